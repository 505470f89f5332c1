"""What a server remembers: keys, traces and running sums (`ledger`), the request
journal (`journal`), seeded history, and the one `State` per server that holds
them all with the clock, the seed and the active playbook. No aiohttp."""
