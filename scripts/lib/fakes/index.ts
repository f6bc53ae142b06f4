/**
 * The cloud providers' local fakes, by provider id: what `npm run conformance -- --provider ID --fake`
 * and test/e2e/conformance.test.ts run the e2b, daytona and cloudflare-containers providers against
 * (their services cannot be reached from here; none of them was run live).
 */
import type { CloudFake, CloudFakeOptions } from "./cloud-fake.js";
import { startFakeCloudflareContainers } from "./cloudflare-containers.js";
import { startFakeDaytona } from "./daytona.js";
import { startFakeE2b } from "./e2b.js";

export type { CloudFake, CloudFakeOptions } from "./cloud-fake.js";

const FAKES: Record<string, (o: CloudFakeOptions) => Promise<CloudFake>> = {
  e2b: startFakeE2b,
  daytona: startFakeDaytona,
  "cloudflare-containers": startFakeCloudflareContainers,
};

export const FAKED_PROVIDERS = Object.keys(FAKES);

/** Starts the fake service of a cloud provider; throws for a provider without one. */
export async function startCloudFake(provider: string, o: CloudFakeOptions): Promise<CloudFake> {
  const start = FAKES[provider];
  if (!start) throw new Error(`no local fake for provider '${provider}' (fakes: ${FAKED_PROVIDERS.join(", ")})`);
  return start(o);
}
