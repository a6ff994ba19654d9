"""`clipit serve`: one loaded model and index behind a JSON API and a web page.

- `batcher`: concurrent requests' texts and images encoded together, in one worker thread.
- `uploads`: request bodies capped in bytes, uploaded images decoded with a pixel cap.
- `classify`: zero-shot label probabilities and a localisation heatmap for an uploaded image.
- `app`: the FastAPI application (API routes, index images, the static page).
- `knn`: clip-retrieval's back-end routes, so its front end can query this server.
- `server`: load everything once, then run uvicorn.
"""
