// Test support: reading a synthesized deployment.
import { gunzipSync } from "zlib";
import { Deployment, SynthResource } from "../../lib/synth/offline-synth";

/** Every resource of one type, in declaration order. */
export function ofType(d: Deployment, type: string): SynthResource[] {
  return d.deployment.resources.filter((r) => r.type === type);
}

/** An instance's cloud-config, whether ServerPair sent it plain or gzipped (over 16 KiB). */
export function userDataOf(r: SynthResource): string {
  if (typeof r.inputs.userData === "string") {
    return r.inputs.userData;
  }
  return gunzipSync(Buffer.from(r.inputs.userDataBase64 as string, "base64")).toString("utf8");
}
