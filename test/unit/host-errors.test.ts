/** How the host reports a provider's failure: HostError as is, a coded Error from an external provider by its code, anything else as internal. */
import { describe, expect, it } from "vitest";
import { toErrorInfo } from "../../provider-agent/src/host/host.js";
import { HostError } from "../../provider-agent/src/host/provider.js";

describe("host error reporting", () => {
  it("keeps HostError, honours a known code on a plain Error, and calls everything else internal", () => {
    expect(toErrorInfo(new HostError("conflict", "busy", { n: 1 }))).toEqual({ code: "conflict", message: "busy", details: { n: 1 } });
    const external = Object.assign(new Error("no such image"), { code: "bad_request", details: { field: "image" } });
    expect(toErrorInfo(external)).toEqual({ code: "bad_request", message: "no such image", details: { field: "image" } });
    expect(toErrorInfo(Object.assign(new Error("ENOENT: gone"), { code: "ENOENT" }))).toEqual({ code: "internal", message: "ENOENT: gone" });
    expect(toErrorInfo("plain")).toEqual({ code: "internal", message: "plain" });
  });
});
