"""What tests script: scenarios and stubs as frozen dataclasses (`scenario`), read
and validated from YAML (`loader`, `schema`), and matched against requests
(`matching`: which rule answers, and which came closest). No aiohttp."""
