"""What every layer stands on: settings, the clock, errors, the fixtures' catalog,
bounded JSON, endpoint names, and what of a key may be shown. Pure."""
