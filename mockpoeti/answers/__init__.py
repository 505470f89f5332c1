"""Pure answer-making: a chat request validated (`chat_request`), the completion
built from it (`completion`, `generate`, `structured`), what a rule asks the answer
to be (`script`), templates, and the fault plans (`faults`). No aiohttp, no state:
tested without a server."""
