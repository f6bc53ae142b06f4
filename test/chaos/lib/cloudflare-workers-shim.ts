/**
 * Stands in for the `cloudflare:workers` module when Node imports the Worker's Hono app to read its
 * route table (test/chaos/lib/routes.ts). Nothing here runs: requests go to the real Worker.
 */
export class DurableObject<Env = unknown> {
  constructor(
    readonly ctx: unknown,
    readonly env: Env,
  ) {}
}
