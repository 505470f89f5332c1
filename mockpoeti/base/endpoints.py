"""The API's endpoints by name: a route's name is also what a scenario's
`endpoint` match says, so both read the names from here."""

from typing import Final

CHAT: Final = "chat"
MODELS: Final = "models"
MODEL: Final = "model"
API_KEYS: Final = "api_keys"
API_KEY: Final = "api_key"
USAGE: Final = "usage"
TRACES: Final = "traces"
TRACE: Final = "trace"
TRACE_STATS: Final = "trace_stats"
OPENAPI: Final = "openapi"  # the document, not an endpoint of the reference: scenarios cannot name it

ENDPOINTS: Final[tuple[str, ...]] = (CHAT, MODELS, MODEL, API_KEYS, API_KEY, USAGE, TRACES, TRACE, TRACE_STATS)
