import * as k8s from '@kubernetes/client-node';

/**
 * Checks a Kubernetes object offline, the two ways the API server would refuse it at `kubectl apply`:
 * - against its OpenAPI schema (types, required fields, formats), with the validators of the `kubernetes-models`
 *   packages (`@kubernetes-models/prometheus-operator` for the Prometheus Operator's kinds);
 * - for fields the schema does not have (a typo such as `volumeMount`, which kubectl's strict field validation
 *   refuses and a lenient apply silently drops), walking the object along `@kubernetes/client-node`'s models.
 * Returns the problems, each with the object's kind/name and the field's path; none when it is fine.
 */
export async function kubeObjectProblems(object: { apiVersion?: string; kind?: string; metadata?: { name?: string } }): Promise<string[]> {
  const { apiVersion = '', kind = '' } = object;
  const what = `${kind}/${object.metadata?.name ?? '?'}`;
  const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
  const module = group === 'monitoring.coreos.com' ? `@kubernetes-models/prometheus-operator/${group}/${version}` : `kubernetes-models/${group ? `${group}/` : ''}${version}`;
  let Model: (new (data: unknown) => { validate(): void }) | undefined;
  try {
    Model = ((await import(module)) as Record<string, new (data: unknown) => { validate(): void }>)[kind];
  } catch {
    Model = undefined;
  }
  if (!Model) return [`${what}: no schema for ${apiVersion} ${kind} (test/support/kube-schema.ts knows kubernetes-models' kinds and the Prometheus Operator's)`];
  const problems: string[] = [];
  try {
    new Model(object).validate();
  } catch (err) {
    problems.push(`${what}: ${String((err as Error).message)}`);
  }
  // The Prometheus Operator's kinds are not client-node's models: their schema check above is all there is.
  if (group !== 'monitoring.coreos.com') {
    const typeName = `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
    if (!(typeName in k8s)) problems.push(`${what}: @kubernetes/client-node has no model ${typeName} to check the fields against`);
    else for (const path of unknownFields(object, typeName, '')) problems.push(`${what}: unknown field ${path}`);
  }
  return problems;
}

interface Attribute {
  readonly baseName: string;
  readonly type: string;
}

/** Paths of fields in `value` that the model `type` (client-node's name, such as `V1PodSpec`) does not have. */
function unknownFields(value: unknown, type: string, path: string): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1] as string, `${path}[${String(i)}]`)) : [];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return typeof value === 'object' ? Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => unknownFields(v, map[1] as string, `${path}.${k}`)) : [];
  const model = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => Attribute[] } | undefined>)[type];
  if (!model?.getAttributeTypeMap || typeof value !== 'object' || Array.isArray(value)) return [];
  const attributes = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  const out: string[] = [];
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const at = path === '' ? key : `${path}.${key}`;
    const t = attributes.get(key);
    if (t === undefined) out.push(at);
    else out.push(...unknownFields(v, t, at));
  }
  return out;
}
