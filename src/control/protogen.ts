// Derives the TypeScript wire types (wire.gen.ts) from proto/virtioforwarder/*.proto, so the
// message shapes are written once, in the .proto. A unit test fails when wire.gen.ts is stale.
// Regenerate: npx tsx src/control/protogen.ts
import { writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join, relative } from 'node:path';
import protobuf from 'protobufjs';
import { loadWireRoot, PROTO_FILE } from './proto.js';

const here = dirname(fileURLToPath(import.meta.url));
export const WIRE_TYPES_FILE = join(here, '..', '..', 'src', 'control', 'wire.gen.ts');

const SCALARS: Record<string, string> = {
  double: 'number',
  float: 'number',
  int32: 'number',
  uint32: 'number',
  sint32: 'number',
  fixed32: 'number',
  sfixed32: 'number',
  // 64-bit integers decode as Long (protobufjs); numbers are accepted when encoding.
  int64: 'number | Long',
  uint64: 'number | Long',
  sint64: 'number | Long',
  fixed64: 'number | Long',
  sfixed64: 'number | Long',
  bool: 'boolean',
  string: 'string',
  bytes: 'Uint8Array',
};

/** TypeScript name of a nested reflection object: virtioforwarder.RelayState.VFtoVM -> RelayState_VFtoVM. */
function tsName(obj: protobuf.ReflectionObject, pkg: string): string {
  return obj.fullName.replace(/^\./, '').slice(pkg.length + 1).replace(/\./g, '_');
}

function collect(ns: protobuf.NamespaceBase, out: protobuf.ReflectionObject[]): void {
  for (const child of ns.nestedArray) {
    if (child instanceof protobuf.Type || child instanceof protobuf.Enum) out.push(child);
    if (child instanceof protobuf.Namespace || child instanceof protobuf.Type) collect(child, out);
  }
}

export function generateWireTypes(root: protobuf.Root = loadWireRoot(), pkg = 'virtioforwarder'): string {
  const ns = root.lookup(pkg);
  if (!(ns instanceof protobuf.Namespace)) throw new Error(`package ${pkg} not found in ${PROTO_FILE}`);
  const objs: protobuf.ReflectionObject[] = [];
  collect(ns, objs);
  const lines: string[] = [
    `// Generated from ${relative(join(here, '..', '..'), PROTO_FILE).replace(/\\/g, '/')} by src/control/protogen.ts: do not edit.`,
    '// Regenerate with: npx tsx src/control/protogen.ts',
    "import type { Long } from 'protobufjs';",
    '',
  ];
  const messages: string[] = [];
  for (const obj of objs) {
    const name = tsName(obj, pkg);
    if (obj instanceof protobuf.Enum) {
      lines.push(`export const ${name} = {`);
      for (const [k, v] of Object.entries(obj.values)) lines.push(`  ${k}: ${v},`);
      lines.push('} as const;');
      lines.push(`export type ${name} = (typeof ${name})[keyof typeof ${name}];`, '');
      continue;
    }
    const type = obj as protobuf.Type;
    messages.push(`  '${type.fullName.replace(/^\./, '')}': ${name};`);
    lines.push(`/** ${pkg}.${name.replace(/_/g, '.')} (proto2). */`);
    if (type.fieldsArray.length === 0) {
      lines.push(`export type ${name} = Record<string, never>;`, '');
      continue;
    }
    lines.push(`export interface ${name} {`);
    for (const f of type.fieldsArray) {
      f.resolve();
      let t = f.resolvedType ? tsName(f.resolvedType, pkg) : SCALARS[f.type];
      if (!t) throw new Error(`unsupported field type ${f.type} in ${type.fullName}.${f.name}`);
      if (f.repeated) t = t.includes(' ') ? `(${t})[]` : `${t}[]`;
      const opt = f.required ? '' : '?';
      const dflt = f.options?.default !== undefined ? ` (default ${String(f.options.default)})` : '';
      lines.push(`  /** ${f.id}: ${f.required ? 'required' : f.repeated ? 'repeated' : 'optional'} ${f.type}${dflt} */`);
      lines.push(`  ${f.name}${opt}: ${t};`);
    }
    lines.push('}', '');
  }
  lines.push('/** Every message by its full protobuf name. */');
  lines.push('export interface WireMessages {', ...messages, '}', '');
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(WIRE_TYPES_FILE, generateWireTypes());
  process.stdout.write(`wrote ${WIRE_TYPES_FILE}\n`);
}
