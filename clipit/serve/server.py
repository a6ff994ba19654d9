"""`clipit serve`: check the address, load the index and the model once, then run uvicorn.

Everything that can fail on input (the index folder, the model, a taken port) fails before the
server starts, as a one-line error. The server binds to loopback unless told otherwise, and a
non-loopback address is warned about: the API has no authentication.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from PIL import Image

from clipit.config.embed import EmbedConfig
from clipit.console import info, warn
from clipit.errors import ConfigError
from clipit.serve.app import Limits, create_app
from clipit.serve.batcher import Batcher

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
KEEP_ALIVE_S = 5  # idle connections closed after this
MAX_CONNECTIONS = 128  # over this uvicorn answers 503 rather than queueing without bound


def check_address(host: str, port: int) -> None:
    """ConfigError unless `host:port` can be bound now."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(
            f"--host {host}: cannot resolve ({exc.strerror})", "pass an address such as 127.0.0.1"
        ) from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(
                f"--host {host} --port {port}: cannot listen ({exc.strerror})", "pick a free --port"
            ) from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load(cfg: EmbedConfig, limits: Limits = Limits()):
    """The FastAPI app over `cfg.index` and `cfg.model` (default: the index's model), warmed up."""
    from clipit.encode import open_model
    from clipit.search import load_index

    if cfg.index is None:
        raise ConfigError(
            "no index folder given", "pass --index DIR (made by clipit embed DIR --out) or set embed.index"
        )
    index = load_index(Path(cfg.index).expanduser().resolve())
    encoder = open_model(cfg.model or index.model, dtype=cfg.dtype, compilation_cache=cfg.compilation_cache)
    if encoder.dim != index.vectors.shape[1]:
        raise ConfigError(
            f"the index holds {index.vectors.shape[1]}-d vectors but {encoder.name} makes {encoder.dim}-d ones",
            f"serve with the model that built the index ({index.model})",
        )
    batcher = Batcher(encoder, max_batch=limits.max_batch, wait_s=limits.batch_wait_s)
    # Compile the one-item forward passes now, so the first user does not wait for XLA.
    batcher.encode_texts(["ciao"]).result()
    batcher.encode_images([Image.new("RGB", (encoder.image_size, encoder.image_size))]).result()
    return create_app(batcher, index, limits)


def run(
    cfg: EmbedConfig, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, limits: Limits = Limits()
) -> None:
    import uvicorn

    check_address(host, port)
    if not is_loopback(host):
        warn(
            f"serving on {host}: anyone who can reach this address can use the API (it has no authentication)"
        )
    app = load(cfg, limits)
    shown = f"[{host}]" if ":" in host else host
    info(f"clipit serve: http://{shown}:{port}/ ({len(app.state.served.index.paths)} images; Ctrl-C stops)")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=MAX_CONNECTIONS,
        timeout_graceful_shutdown=5,
    )
    app.state.served.batcher.close()
