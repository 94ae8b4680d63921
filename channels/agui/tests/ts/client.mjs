// Drives one TypeScript AG-UI client (`HttpAgent`, which verifies the event sequence it reads) through three
// runs on one thread, then prints what it saw as JSON. Usage: node client.mjs <package> <url> <thread id>
const [pkg, url, threadId] = process.argv.slice(2);
const { HttpAgent } = await import(pkg);

const agent = new HttpAgent({ url, threadId, initialState: { theme: "dark" } });
const tools = [{ name: "confirm", description: "Ask the user", parameters: { type: "object" } }];
const runs = [];
async function run(runId, message) {
  const events = [];
  agent.addMessage(message);
  await agent.runAgent({ runId, tools }, { onEvent: ({ event }) => events.push(event.type) });
  runs.push(events);
}

await run("r1", { id: "u1", role: "user", content: "what is the weather?" });
await run("r2", { id: "u2", role: "user", content: "please confirm" });
const call = agent.messages.at(-1).toolCalls[0];
await run("r3", { id: "t3", role: "tool", toolCallId: call.id, content: "yes" });

const messages = agent.messages.map((m) => ({
  role: m.role, content: m.content ?? null, toolCalls: (m.toolCalls ?? []).map((c) => c.function.name),
}));
console.log(JSON.stringify({ runs, messages, state: agent.state }));
