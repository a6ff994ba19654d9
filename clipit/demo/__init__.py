"""`clipit demo`: the whole lifecycle, offline, on the built-in synthetic Italian dataset."""

from clipit.demo.pipeline import DEFAULT_OUT, demo_config, run_demo

__all__ = ["DEFAULT_OUT", "demo_config", "run_demo"]
