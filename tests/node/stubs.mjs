// Stubs over HTTP from Node: POST /__admin/stubs with fetch, then the official openai
// npm package sees the stubbed answers (and the SDK's own retry loop gets through a 429).
// Usage: node stubs.mjs ROOT_URL API_KEY   (prints one JSON summary line)
import OpenAI from "openai";

const [url, apiKey] = process.argv.slice(2);
if (!url || !apiKey) {
  console.error("usage: node stubs.mjs ROOT_URL API_KEY");
  process.exit(2);
}

async function admin(method, path, body) {
  const response = await fetch(`${url}/__admin${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

const created = await admin("POST", "/stubs", {
  match: { model: "gpt-4o-mini", message: "/天气/" },
  respond: { content: "上海今天晴，25°C。" },
});
const retried = await admin("POST", "/stubs", {
  match: { message: "retry me" },
  respond: [{ error: "rate_limit_exceeded", headers: { "Retry-After": "0.1" } }, "after a retry"],
});

const client = new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 1 });
const ask = async (model, text) =>
  (await client.chat.completions.create({ model, messages: [{ role: "user", content: text }] })).choices[0].message.content;

const stubbed = await ask("gpt-4o-mini", "今天天气怎么样？");
const other = await ask("gpt-4o", "今天天气怎么样？");
const afterRetry = await ask("gpt-4o", "please retry me");
const listed = await admin("GET", "/stubs");
const removed = await admin("DELETE", `/stubs/${created.body.id}`);
const gone = await admin("DELETE", `/stubs/${created.body.id}`);
const unstubbed = await ask("gpt-4o-mini", "今天天气怎么样？");

console.log(
  JSON.stringify({
    created,
    retried_id: retried.body.id,
    stubbed,
    other,
    after_retry: afterRetry,
    listed: listed.body.stubs.map((s) => ({ id: s.id, calls: s.calls })),
    removed: removed.status,
    gone,
    unstubbed,
  }),
);
