import { readFile } from 'node:fs/promises';
import { type CelInput, type CelValue, isCelError, run } from '@bufbuild/cel';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';

// The admission policy that keeps each weft agent to its own node (manifests/components/own-node-policy/admission-policy.yaml), evaluated the way
// the API server evaluates a ValidatingAdmissionPolicy: match conditions, then the variables in order, then every
// validation; an expression that fails to evaluate denies (failurePolicy: Fail). The CEL is run by a CEL evaluator
// (@bufbuild/cel), so a typo or a wrong function in the policy fails here.
interface Policy {
  spec: {
    failurePolicy: string;
    matchConditions: { name: string; expression: string }[];
    variables: { name: string; expression: string }[];
    validations: { expression: string; message?: string; messageExpression?: string }[];
  };
}
const docs = parseAllDocuments(await readFile(new URL('../manifests/components/own-node-policy/admission-policy.yaml', import.meta.url), 'utf8')).map((d) => d.toJS() as { kind: string; spec: Record<string, unknown> });
const policy = docs.find((d) => d.kind === 'ValidatingAdmissionPolicy') as unknown as Policy;
const binding = docs.find((d) => d.kind === 'ValidatingAdmissionPolicyBinding');

/** JSON as CEL sees Kubernetes objects: maps for objects, lists for arrays. */
const cel = (v: unknown): CelInput => (Array.isArray(v) ? v.map(cel) : v !== null && typeof v === 'object' ? new Map(Object.entries(v).map(([k, x]) => [k, cel(x)])) : (v as CelInput));

function admit(user: { username: string; nodeName?: string | null }, oldObject: object, object: object): { allowed: true } | { allowed: false; message: string } {
  const extra = user.nodeName === undefined ? {} : user.nodeName === null ? { other: ['x'] } : { 'authentication.kubernetes.io/node-name': [user.nodeName] };
  const vars = new Map<string, CelInput>();
  const env = () => ({ request: cel({ userInfo: { username: user.username, extra } }), object: cel(object), oldObject: cel(oldObject), variables: vars });
  // An expression that does not evaluate (an error value) is a failure of the policy: failurePolicy decides.
  const evaluate = (expression: string): CelValue => {
    const r = run(expression, env());
    if (isCelError(r)) throw new Error(`${expression}: ${r.message}`);
    return r;
  };
  try {
    for (const m of policy.spec.matchConditions) if (evaluate(m.expression) !== true) return { allowed: true };
    for (const v of policy.spec.variables) vars.set(v.name, evaluate(v.expression));
    for (const v of policy.spec.validations) {
      if (evaluate(v.expression) !== true) {
        const message = v.messageExpression ? evaluate(v.messageExpression) : v.message;
        return { allowed: false, message: typeof message === 'string' ? message : '' };
      }
    }
    return { allowed: true };
  } catch (err) {
    if (policy.spec.failurePolicy !== 'Fail') return { allowed: true };
    return { allowed: false, message: `evaluation failed: ${err instanceof Error ? err.message : 'unknown'}` };
  }
}

const AGENT = 'system:serviceaccount:kube-system:weft';
const node = (name: string, patch: { annotations?: Record<string, string>; labels?: Record<string, string>; spec?: object; finalizers?: string[] } = {}) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: {
    name,
    labels: patch.labels ?? { 'kubernetes.io/hostname': name },
    annotations: patch.annotations ?? { 'weft.io/wireguard-public-key': 'old', 'node.alpha.kubernetes.io/ttl': '0' },
    ...(patch.finalizers ? { finalizers: patch.finalizers } : {}),
  },
  spec: patch.spec ?? { podCIDR: '10.4.1.0/24', podCIDRs: ['10.4.1.0/24'] },
});
const before = node('n1');

describe('the admission policy: a weft agent changes only its own node, and only weft.io/ annotations', () => {
  it('is bound with Deny and fails closed', () => {
    expect(policy.spec.failurePolicy).toBe('Fail');
    expect(binding?.spec).toEqual({ policyName: 'weft-agent-own-node', validationActions: ['Deny'] });
  });

  it.each<[string, { username: string; nodeName?: string | null }, object, object, RegExp | 'allowed']>([
    ["the agent on n1 changes n1's weft.io/ annotations", { username: AGENT, nodeName: 'n1' }, before, node('n1', { annotations: { 'weft.io/wireguard-public-key': 'new', 'weft.io/wireguard-last-seen': '1', 'node.alpha.kubernetes.io/ttl': '0' } }), 'allowed'],
    ["the agent on n1 removes n1's weft.io/ annotations (weft cleanup)", { username: AGENT, nodeName: 'n1' }, before, node('n1', { annotations: { 'node.alpha.kubernetes.io/ttl': '0' } }), 'allowed'],
    ["the agent on n2 changes n1's annotations", { username: AGENT, nodeName: 'n2' }, before, node('n1', { annotations: { 'weft.io/wireguard-public-key': 'stolen', 'node.alpha.kubernetes.io/ttl': '0' } }), /the weft agent on n2 may change only its own node, not n1/],
    ['a token that names no node', { username: AGENT }, before, node('n1', { annotations: { 'weft.io/wireguard-public-key': 'new', 'node.alpha.kubernetes.io/ttl': '0' } }), /token names no node/],
    ['a token with other extras but no node name', { username: AGENT, nodeName: null }, before, node('n1', { annotations: { 'weft.io/wireguard-public-key': 'new', 'node.alpha.kubernetes.io/ttl': '0' } }), /token names no node/],
    ['the agent changes an annotation that is not weft.io/', { username: AGENT, nodeName: 'n1' }, before, node('n1', { annotations: { 'weft.io/wireguard-public-key': 'old', 'node.alpha.kubernetes.io/ttl': '30' } }), /only annotations under weft\.io\//],
    ['the agent adds one', { username: AGENT, nodeName: 'n1' }, before, node('n1', { annotations: { ...before.metadata.annotations, 'example.com/x': 'y' } }), /only annotations under weft\.io\//],
    ['the agent removes one', { username: AGENT, nodeName: 'n1' }, before, node('n1', { annotations: { 'weft.io/wireguard-public-key': 'old' } }), /only annotations under weft\.io\//],
    ['the agent adds a label (say, the leader label)', { username: AGENT, nodeName: 'n1' }, before, node('n1', { labels: { 'kubernetes.io/hostname': 'n1', 'node-restriction.kubernetes.io/weft-leader': 'true' } }), /labels/],
    ['the agent changes its pod CIDR', { username: AGENT, nodeName: 'n1' }, before, node('n1', { spec: { podCIDR: '10.4.0.0/16', podCIDRs: ['10.4.0.0/16'] } }), /spec/],
    ['the agent taints its node', { username: AGENT, nodeName: 'n1' }, before, node('n1', { spec: { ...before.spec, taints: [{ key: 'x', effect: 'NoSchedule' }] } }), /spec/],
    ['the agent adds a finalizer', { username: AGENT, nodeName: 'n1' }, before, node('n1', { finalizers: ['example.com/hold'] }), /finalizers/],
    ['the kubelet (not weft) changes its node: not this policy', { username: 'system:node:n1' }, before, node('n1', { labels: { a: 'b' } }), 'allowed'],
    ['another service account: not this policy', { username: 'system:serviceaccount:kube-system:other', nodeName: 'n2' }, before, node('n1', { annotations: {} }), 'allowed'],
  ])('%s', (_what, user, oldObject, object, expected) => {
    const r = admit(user, oldObject, object);
    if (expected === 'allowed') expect(r).toEqual({ allowed: true });
    else {
      expect(r.allowed).toBe(false);
      expect('message' in r ? r.message : '').toMatch(expected);
    }
  });
});
