"""The HTTP path: the connection edge, the router, and the pipeline every request
takes (`pipeline.py` lists the stages: route, CORS, auth, match, respond, finish),
with the endpoints' handlers in `routes/`. The only layer that speaks aiohttp,
besides the recorder."""
