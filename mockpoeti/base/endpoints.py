"""The API's endpoints by name: a route's name is also what a scenario's
`endpoint` match says, so both read the names from here."""

CHAT = "chat"
MODELS = "models"
MODEL = "model"
API_KEYS = "api_keys"
API_KEY = "api_key"
USAGE = "usage"
TRACES = "traces"
TRACE = "trace"
TRACE_STATS = "trace_stats"
OPENAPI = "openapi"  # the document, not an endpoint of the reference: scenarios cannot name it

ENDPOINTS = (CHAT, MODELS, MODEL, API_KEYS, API_KEY, USAGE, TRACES, TRACE, TRACE_STATS)
