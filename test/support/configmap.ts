import { mkdir, mkdtemp, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A directory laid out the way the kubelet mounts a ConfigMap: the data in a timestamped directory, `..data`
 * pointing at it, and each key a symlink through `..data`. `update` swaps `..data` atomically, as the kubelet does,
 * then links the keys that came and unlinks those that went.
 */
export async function fakeConfigMap(files: Record<string, string>) {
  const dir = await mkdtemp(join(tmpdir(), 'weft-configmap-'));
  let generation = 0;
  const writeGeneration = async (content: Record<string, string>) => {
    generation += 1;
    const gen = `..2026_11_23_00_00_0${generation}.${process.pid}`;
    await mkdir(join(dir, gen));
    for (const [name, text] of Object.entries(content)) await writeFile(join(dir, gen, name), text);
    return gen;
  };
  const first = await writeGeneration(files);
  await symlink(first, join(dir, '..data'));
  let keys = Object.keys(files);
  for (const name of keys) await symlink(join('..data', name), join(dir, name));
  return {
    dir,
    path: (name: string) => join(dir, name),
    async update(content: Record<string, string>) {
      const previous = await readlink(join(dir, '..data'));
      const gen = await writeGeneration(content);
      await symlink(gen, join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
      await rm(join(dir, previous), { recursive: true, force: true });
      // As the kubelet: a key that came gets its link, a key that went loses it.
      for (const name of Object.keys(content)) if (!keys.includes(name)) await symlink(join('..data', name), join(dir, name));
      for (const name of keys) if (!(name in content)) await rm(join(dir, name), { force: true });
      keys = Object.keys(content);
    },
    async remove() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}
