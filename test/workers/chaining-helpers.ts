/** What the chaining tests in workerd share: environments with a connected TestAgent, gateways, forwards. */
import { call, createEnvironment, eventually, stateOf, TestAgent } from "./helpers.js";

export type Env = { id: string; name: string; agent: TestAgent; agentToken: string };

/** A running environment whose agent is a TestAgent; `gateway`: open it to the whole org. */
export async function environment(token: string, name: string, o: { heartbeatMs?: number; gateway?: boolean } = {}): Promise<Env> {
  const { environment, agentToken } = await createEnvironment(token, name, "local", o.heartbeatMs ? { lifecycle: { heartbeatMs: o.heartbeatMs } } : {});
  const agent = await TestAgent.ready(environment.id, agentToken);
  await eventually(async () => (await stateOf(token, environment.id)) === "running");
  if (o.gateway) await openGateway(token, name);
  return { id: environment.id, name, agent, agentToken };
}

export const openGateway = (token: string, env: string, allowFrom = ["*"], capabilities: string[] = []) =>
  call("PUT", `/v1/environments/${env}/gateway`, { token, json: { accept: true, allowFrom, capabilities } });

/** POST …/forward from `from`, streamed as ndjson unless `ndjson` is false. */
export const forward = (token: string, from: string, body: unknown, ndjson = true) =>
  call("POST", `/v1/environments/${from}/forward`, { token, json: body, headers: ndjson ? { accept: "application/x-ndjson" } : {} });
