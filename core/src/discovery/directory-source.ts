import { randomBytes } from 'node:crypto';
import { watch as watchFs, type FSWatcher } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import type { AnnotationPatch, ClusterView, EndpointSliceInfo, NodeInfo, NodeSource, ServiceInfo, Watchable } from '../api/cluster.js';
import { describeError } from '../api/errors.js';
import { ConfigError, formatIssue, issuesToProblems } from '../config/load.js';
import { NodeDocument, type DirectorySettings } from '../config/schema.js';
import { formatProblem, YamlSource } from '../config/yaml-source.js';
import type { Logger } from '../observe/logger.js';
import { patchAnnotations } from './memory-source.js';
import { type NodeReads, nodeNarrower } from './reads.js';
import { locationOf, makeView } from './view.js';

/**
 * The `directory` source: one YAML document per node (`<name>.yaml`) in a folder that every agent can read. Each
 * agent writes its own document atomically (temp file + rename); all watch the folder (events plus a periodic
 * rescan). A malformed document is skipped with a log line naming file, line and column; a document that breaks
 * after it was good keeps its last good version. Used by the local lab and by hosts without Kubernetes.
 */
export class DirectoryNodeSource implements NodeSource {
  private view: ClusterView;
  private onChange: ((view: ClusterView) => void) | undefined;
  /** What the plugins read of the other nodes (see start()). */
  private narrow: (node: NodeInfo) => NodeInfo = (node) => node;
  private watches: ReadonlySet<Watchable> = new Set(['nodes']);
  private readonly good = new Map<string, NodeDocument>();
  /** When this agent first saw each node (ms): the node's age, since a document's own word cannot date it. */
  private firstSeen = new Map<string, number>();
  private firstSeenSaving: Promise<void> = Promise.resolve();
  /**
   * Per file, what its last read found, by the file's identity (inode, size, mtime): a file that did not change is
   * not read or parsed again, and a bad one is reported once. Only that key is kept, never a bad file's text.
   */
  private readonly read = new Map<string, { key: string; doc: NodeDocument | undefined }>();
  private ownAnnotations: Record<string, string> = {};
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private settle: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private again = false;
  private isSynced = false;
  private stopped = false;

  constructor(
    private readonly selfName: string,
    private readonly settings: DirectorySettings,
    private readonly logger: Logger,
    /**
     * `watch: false` leaves only the periodic rescan (tests prove it alone finds every change). `firstSeenFile`
     * keeps when this agent first saw each node across restarts (the node's age; without it, in memory only).
     */
    private readonly options: { watch?: boolean; firstSeenFile?: string } = {},
  ) {
    this.view = makeView({ selfName, nodes: [], revision: 0, datedBy: 'agent' });
  }

  /** Of the other nodes' documents, only the annotations and labels in `reads` make it into the view. */
  async start(watches: ReadonlySet<Watchable>, onChange: (view: ClusterView) => void, reads?: NodeReads): Promise<void> {
    this.watches = watches;
    this.narrow = nodeNarrower(reads, this.selfName);
    await mkdir(this.settings.path, { recursive: true });
    this.firstSeen = await this.loadFirstSeen();
    // Annotations this node published before a restart stay, as they would on a Node object.
    const previous = await this.readDocument(`${this.selfName}.yaml`);
    this.ownAnnotations = { ...(previous?.annotations ?? {}), ...this.settings.self.annotations };
    await this.writeOwn();
    try {
      if (this.options.watch !== false) this.watcher = watchFs(this.settings.path, { persistent: false }, (_e, name) => {
        if (name === null || (name.endsWith('.yaml') && !name.startsWith('.'))) this.scheduleScan();
      });
      this.watcher?.on('error', (err) => this.logger.warn({ err: describeError(err) }, 'watching the node directory failed; rescanning periodically'));
    } catch (err) {
      this.logger.warn({ err: describeError(err) }, 'cannot watch the node directory; rescanning periodically');
    }
    this.poll = setInterval(() => this.scheduleScan(0), this.settings.rescan);
    this.poll.unref();
    await this.scan();
    this.onChange = onChange;
  }

  current(): ClusterView {
    return this.view;
  }

  synced(): boolean {
    return this.isSynced;
  }

  async publish(patch: AnnotationPatch): Promise<void> {
    const { annotations, changed } = patchAnnotations(this.ownAnnotations, patch);
    if (!changed) return;
    this.ownAnnotations = annotations;
    await this.writeOwn();
    await this.scan();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.onChange = undefined;
    this.watcher?.close();
    clearInterval(this.poll);
    clearTimeout(this.settle);
    await this.scanning;
    await this.firstSeenSaving;
  }

  private async loadFirstSeen(): Promise<Map<string, number>> {
    const file = this.options.firstSeenFile;
    if (file === undefined) return new Map();
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as unknown;
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
      return new Map(Object.entries(parsed as Record<string, unknown>).filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1])));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warn({ file, err: describeError(err) }, 'cannot read when nodes were first seen; every node counts as new');
      return new Map();
    }
  }

  /** Dates the nodes present now: a node seen for the first time is as old as this moment; a node gone is forgotten. */
  private dateNodes(names: readonly string[]): void {
    // Wall time, since it is kept across restarts; but never earlier than a date already given: a clock stepped back
    // must not make a newcomer look older than the nodes it would contest.
    let latest = 0;
    for (const t of this.firstSeen.values()) latest = Math.max(latest, t);
    const now = Math.max(Date.now(), latest);
    let changed = false;
    for (const name of names) {
      if (!this.firstSeen.has(name)) {
        this.firstSeen.set(name, now);
        changed = true;
      }
    }
    const present = new Set(names);
    for (const name of [...this.firstSeen.keys()]) {
      if (!present.has(name)) {
        this.firstSeen.delete(name);
        changed = true;
      }
    }
    const file = this.options.firstSeenFile;
    if (!changed || file === undefined) return;
    const text = JSON.stringify(Object.fromEntries(this.firstSeen));
    this.firstSeenSaving = this.firstSeenSaving.then(async () => {
      const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
      try {
        await mkdir(dirname(file), { recursive: true, mode: 0o700 });
        await writeFile(temp, text, { mode: 0o600 });
        await rename(temp, file);
      } catch (err) {
        await rm(temp, { force: true });
        this.logger.warn({ file, err: describeError(err) }, 'cannot record when nodes were first seen');
      }
    });
  }

  private ownDocument(): NodeDocument {
    const s = this.settings.self;
    return {
      name: this.selfName,
      internalAddresses: s.internalAddresses,
      externalAddresses: s.externalAddresses,
      podCIDRs: s.podCIDRs,
      labels: s.labels,
      annotations: this.ownAnnotations,
      ready: s.ready,
      services: s.services,
      endpointSlices: s.endpointSlices,
    };
  }

  /** Temp file + rename: readers see the old document or the new one, never half of one. */
  private async writeOwn(): Promise<void> {
    const target = join(this.settings.path, `${this.selfName}.yaml`);
    const temp = join(this.settings.path, `.${this.selfName}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      // No anchors and aliases: the readers refuse documents with many (an alias bomb), and need none.
      await writeFile(temp, stringify(this.ownDocument(), { aliasDuplicateObjects: false }), { mode: 0o644 });
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  private scheduleScan(ms = 30): void {
    if (this.stopped) return;
    clearTimeout(this.settle);
    this.settle = setTimeout(() => void this.scan(), ms);
  }

  private scan(): Promise<void> {
    if (this.scanning) {
      this.again = true;
      return this.scanning;
    }
    this.scanning = this.scanOnce()
      .catch((err: unknown) => this.logger.warn({ err: describeError(err) }, 'scanning the node directory failed; the last view stays'))
      .finally(() => {
        this.scanning = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          void this.scan();
        }
      });
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    const files = (await readdir(this.settings.path)).filter((f) => f.endsWith('.yaml') && !f.startsWith('.'));
    const present = new Set(files);
    for (const file of [...this.good.keys()]) if (!present.has(file)) this.good.delete(file);
    for (const file of [...this.read.keys()]) if (!present.has(file)) this.read.delete(file);
    for (const file of files) {
      const doc = await this.readDocument(file);
      if (doc) this.good.set(file, doc);
    }
    this.isSynced = true;
    const next = this.buildView();
    if (JSON.stringify({ ...next, revision: 0 }) === JSON.stringify({ ...this.view, revision: 0 })) return;
    this.view = next;
    this.onChange?.(next);
  }

  /**
   * Reads and validates one document, unless it has not changed since the last read. A document over
   * `maxDocumentBytes`, over the YAML limits or malformed is logged (once per version) and the node keeps its last
   * good version (or is left out); nothing in one document can stop the others from being read.
   */
  private async readDocument(file: string): Promise<NodeDocument | undefined> {
    const path = join(this.settings.path, file);
    let info;
    try {
      info = await stat(path);
    } catch {
      return undefined; // removed between readdir and read
    }
    const key = `${String(info.ino)}:${String(info.size)}:${String(info.mtimeMs)}`;
    const last = this.read.get(file);
    if (last?.key === key) return last.doc ?? this.good.get(file);
    let messages: string[];
    let doc: NodeDocument | undefined;
    const max = this.settings.maxDocumentBytes;
    if (!info.isFile()) messages = [`${path}: not a regular file`];
    else if (info.size > max) messages = [`${path}: ${String(info.size)} bytes, more than discovery.directory.maxDocumentBytes (${String(max)})`];
    else {
      try {
        const text = await readFile(path, 'utf8');
        const checked = Buffer.byteLength(text) > max ? { messages: [`${path}: more than discovery.directory.maxDocumentBytes (${String(max)}) bytes`] } : documentProblems(path, file, text, this.settings);
        if ('doc' in checked) doc = checked.doc;
        messages = 'messages' in checked ? checked.messages : [];
      } catch (err) {
        messages = [`${path}: ${describeError(err)}`];
      }
    }
    this.read.set(file, { key, doc });
    if (doc) return doc;
    const kept = this.good.has(file) ? '; its last good version stays' : '; the node is left out';
    this.logger.warn({ file: path, problems: messages }, `skipping malformed node document ${file}${kept}`);
    return this.good.get(file);
  }

  private buildView(): ClusterView {
    const nodes: NodeInfo[] = [];
    const services: ServiceInfo[] = [];
    const slices: EndpointSliceInfo[] = [];
    this.dateNodes([...new Set([this.selfName, ...[...this.good.values()].map((d) => d.name)])]);
    for (const doc of this.good.values()) {
      const node: NodeInfo = {
        name: doc.name,
        internalAddresses: doc.internalAddresses,
        externalAddresses: doc.externalAddresses,
        podCIDRs: doc.podCIDRs,
        labels: doc.labels,
        annotations: doc.annotations,
        ready: doc.ready,
        location: locationOf(doc.labels, doc.annotations),
        createdAt: this.firstSeen.get(doc.name) ?? Date.now(),
      };
      nodes.push(this.narrow(node));
      services.push(...doc.services);
      slices.push(...doc.endpointSlices);
    }
    const byName = (a: { namespace: string; name: string }, b: { namespace: string; name: string }) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`);
    return makeView({
      selfName: this.selfName,
      nodes,
      services: this.watches.has('services') ? services.sort(byName) : undefined,
      endpointSlices: this.watches.has('endpointslices') ? slices.sort(byName) : undefined,
      revision: this.view.revision + 1,
      fallbackSelf: { ...this.ownAsNode() },
      datedBy: 'agent',
    });
  }

  private ownAsNode(): NodeInfo {
    const d = this.ownDocument();
    return { ...d, location: locationOf(d.labels, d.annotations), createdAt: this.firstSeen.get(d.name) ?? Date.now() };
  }
}

/** Validates a node document; the name inside must match the file name. */
export function documentProblems(path: string, file: string, text: string, limits: { readonly maxAliases: number; readonly maxDepth: number }): { doc: NodeDocument } | { messages: string[] } {
  const parsed = YamlSource.parse(path, text, null, limits);
  if ('problems' in parsed) return { messages: parsed.problems.map(formatProblem) };
  const result = NodeDocument.safeParse(parsed.source.toJS(), { reportInput: true, error: formatIssue });
  if (!result.success) return { messages: new ConfigError(issuesToProblems(parsed.source, [], result.error.issues)).problems.map(formatProblem) };
  const stem = file.replace(/\.yaml$/, '');
  if (result.data.name !== stem) return { messages: [formatProblem(parsed.source.problemAt(['name'], `expected "${stem}" (the file name), got ${JSON.stringify(result.data.name)}`))] };
  return { doc: result.data };
}
