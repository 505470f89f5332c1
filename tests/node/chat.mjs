// The official openai npm package against a running mockpoeti.
// Usage: node chat.mjs ROOT_URL API_KEY   (prints one JSON summary line)
import OpenAI from "openai";

const [url, apiKey] = process.argv.slice(2);
if (!url || !apiKey) {
  console.error("usage: node chat.mjs ROOT_URL API_KEY");
  process.exit(2);
}
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0 });
const messages = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "解释量子纠缠" },
];

const { data: completion, response } = await client.chat.completions
  .create({ model: "gpt-4o", messages })
  .withResponse();

const stream = await client.chat.completions.create({
  model: "gpt-4o",
  messages,
  stream: true,
  stream_options: { include_usage: true },
});
const chunks = [];
for await (const chunk of stream) chunks.push(chunk);
const choiceChunks = chunks.filter((c) => c.choices.length > 0);
const contentChunks = choiceChunks.filter((c) => c.choices[0].delta.content);

const models = [];
for await (const model of client.models.list()) models.push({ id: model.id, owned_by: model.owned_by });

console.log(
  JSON.stringify({
    chat: {
      id: completion.id,
      object: completion.object,
      model: completion.model,
      content: completion.choices[0].message.content,
      finish_reason: completion.choices[0].finish_reason,
      usage: completion.usage,
      trace_id: response.headers.get("x-trace-id"),
    },
    stream: {
      ids: [...new Set(chunks.map((c) => c.id))],
      objects: [...new Set(chunks.map((c) => c.object))],
      first_role: chunks[0]?.choices[0]?.delta?.role ?? null,
      text: contentChunks.map((c) => c.choices[0].delta.content).join(""),
      content_chunks: contentChunks.length,
      finish_reason: choiceChunks.at(-1)?.choices[0]?.finish_reason ?? null,
      last_choices: chunks.at(-1)?.choices.length ?? null,
      usage: chunks.at(-1)?.usage ?? null,
    },
    models,
  }),
);
