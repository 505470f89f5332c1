// Two sessions of one `mockpoeti serve`, driven at once by the official openai npm package,
// with different seeds, clocks, scenarios and stubs. Prints one JSON line: what each session
// answered and what its books say, and what the root saw (tests/test_sessions_isolation.py).
// Usage: node sessions.mjs ROOT_URL ROOT_API_KEY
import OpenAI from "openai";

const [root, rootKey] = process.argv.slice(2);
if (!root || !rootKey) {
  console.error("usage: node sessions.mjs ROOT_URL ROOT_API_KEY");
  process.exit(2);
}

async function call(method, url, body, key) {
  const headers = { "content-type": "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

const PLANS = {
  a: {
    options: { seed: 1, clock: "2026-01-15T10:00:00Z", scenario: ["retry-then-succeed"] },
    weather: "A: sunny",
  },
  b: {
    options: {
      seed: 2,
      clock: "2026-06-15T10:00:00Z",
      scenario: [{ name: "b-rules", rules: [{ match: { model: "gpt-4o-mini" }, respond: { content: "B: scripted" } }] }],
    },
    weather: "B: rainy",
  },
};

async function drive(name, plan) {
  const session = (await call("POST", `${root}/__admin/sessions`, plan.options)).body;
  await call("POST", `${session.root_url}/__admin/stubs`, { match: { message: "/weather/" }, respond: plan.weather });
  const seen = { answers: [], created: [], trace_ids: [], tokens: 0 };
  const ask = async (client, model, text) => {
    const { data, response } = await client.chat.completions
      .create({ model, messages: [{ role: "user", content: text }] })
      .withResponse();
    seen.answers.push(data.choices[0].message.content);
    seen.created.push(data.created);
    seen.trace_ids.push(response.headers.get("x-trace-id"));
    seen.tokens += data.usage.total_tokens;
  };
  const client = new OpenAI({ baseURL: session.base_url, apiKey: session.api_key, maxRetries: 2 });
  for (let i = 0; i < 10; i++) await ask(client, "gpt-4o", `weather in city ${i}?`);
  await ask(client, "gpt-4o", "hello");
  await ask(client, "gpt-4o-mini", "hello");
  const made = await call("POST", `${session.root_url}/api/v1/api-keys`, { name: `made in ${name}` }, session.api_key);
  const key = made.body.data.key;
  const second = new OpenAI({ baseURL: session.base_url, apiKey: key, maxRetries: 0 });
  for (let i = 0; i < 3; i++) await ask(second, "gpt-4o", `weather again ${i}`);
  return { session, key, seen };
}

async function books(session) {
  const get = (path) => call("GET", `${session.root_url}${path}`, undefined, session.api_key);
  const traces = [];
  for (let page = 1; ; page++) {
    const data = (await get(`/api/v1/request-traces?page_size=100&page=${page}`)).body.data;
    traces.push(...data.items.map((t) => t.trace_id));
    if (traces.length >= data.total || data.items.length === 0) break;
  }
  return {
    traces,
    usage: (await get("/api/v1/usage")).body.data,
    keys: (await get("/api/v1/api-keys")).body.data.map((k) => [k.name, k.total_requests]),
    stub_calls: (await get("/__admin/stubs")).body.stubs.map((s) => s.calls),
    journal: (await get("/__admin/requests")).body.requests.map((e) => [e.path, e.status, e.trace_id]),
  };
}

const [a, b] = await Promise.all([drive("a", PLANS.a), drive("b", PLANS.b)]);
const summary = { a: { ...a, books: await books(a.session) }, b: { ...b, books: await books(b.session) } };
summary.root = {
  journal: (await call("GET", `${root}/__admin/requests`)).body.requests.length,
  usage: (await call("GET", `${root}/api/v1/usage`, undefined, rootKey)).body.data.total_requests,
};
summary.foreign = {};
for (const [name, owner, other] of [["a", a, b], ["b", b, a]]) {
  for (const key of [owner.session.api_key, owner.key]) {
    const there = await call("GET", `${other.session.base_url}/models`, undefined, key);
    const atRoot = await call("GET", `${root}/v1/models`, undefined, key);
    summary.foreign[`${name}:${key}`] = [there.status, there.body.error?.code, atRoot.status, atRoot.body.error?.code];
  }
}
summary.ended = [
  (await call("DELETE", `${root}/__admin/sessions/${a.session.id}`)).status,
  (await call("DELETE", `${root}/__admin/sessions/${b.session.id}`)).status,
  (await call("GET", `${a.session.base_url}/models`, undefined, a.session.api_key)).status,
];
console.log(JSON.stringify(summary));
