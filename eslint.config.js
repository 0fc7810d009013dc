// Lint rules for the TypeScript control plane; type-aware rules come from the test tsconfig.
// The folder rules at the end keep the architecture honest (see README's folder table):
// roles meet through types; only src/agent and src/cli wire them; util/ and kube/ are shared
// layers; only src/engine/native.ts loads the addon; only src/util/identifiers.ts spells a
// PCI address as a regex.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

/** Folders under src/ that hold one role each. */
const ROLES = ['cni', 'control', 'deviceplugin', 'doctor', 'engine', 'kubevirt', 'metrics', 'operator', 'policy', 'relay', 'sriov'];
/** Value imports a role may make of another, with the reason. */
const ALLOWED = {
  // the doctor checks a host with the agent's own discovery and the engine's pool formula
  doctor: ['sriov', 'engine/sizing'],
};

/** Roles a role may import values from, whole, with the reason. */
const ALLOWED_ROLES = {
  // the operator places relays by the same pool policy (pure functions) the agent enforces
  operator: ['policy'],
};

const NO_DEFAULT_EXPORT = { selector: 'ExportDefaultDeclaration', message: 'Use named exports.' };
/** A regex (or a JSON-schema pattern string) for a PCI address: DDDD:BB:SS.F and its kin. */
const PCI_REGEX = [
  {
    selector: 'Literal[regex.pattern=/\\{[0-9,]*4\\}\\)?:|\\\\\\.\\(?\\[0-7\\]/]',
    message: 'Parse PCI addresses with src/util/identifiers.ts (parsePciAddress, isPciAddress, pciFields); no regex of your own.',
  },
  {
    selector: 'Literal[value=/\\{4\\}:\\[0-9a-fA-F\\]\\{2\\}:/]',
    message: 'Take the PCI-address pattern from src/util/identifiers.ts (PCI_ADDRESS_PATTERN).',
  },
];

function roleBoundaries(role) {
  const others = ROLES.filter((r) => r !== role && !(ALLOWED_ROLES[role] ?? []).includes(r));
  const group = others.flatMap((r) => [`../${r}/*`, `../../${r}/*`, `../${r}`, `../../${r}`]);
  return {
    files: [`src/${role}/**/*.ts`],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group,
              allowTypeImports: true,
              message: 'Roles meet through types: import only types from another role (wire values in src/agent or src/cli), or move what both need to src/util.',
            },
          ],
        },
      ],
    },
  };
}

export default tseslint.config(
  { ignores: ['dist/', 'native/build/', 'node_modules/', 'helm/', '**/*.mjs'] },
  js.configs.recommended,
  { languageOptions: { globals: { ...globals.node } } },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', NO_DEFAULT_EXPORT],
    },
  },
  // ---- folder boundaries -------------------------------------------------------------------
  ...ROLES.filter((r) => !ALLOWED[r]).map(roleBoundaries),
  {
    // the doctor: like every role, plus its allowed value imports
    files: ['src/doctor/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ROLES.filter((r) => r !== 'doctor' && r !== 'sriov' && r !== 'engine').flatMap((r) => [`../${r}/*`, `../../${r}/*`]),
              allowTypeImports: true,
              message: 'Roles meet through types: import only types from another role.',
            },
            {
              group: ['../engine/*', '../../engine/*', '!../engine/sizing.js', '!../../engine/sizing.js'],
              allowTypeImports: true,
              message: 'The doctor may use the engine\'s pool formula (engine/sizing.ts) and types, nothing else of the engine.',
            },
          ],
        },
      ],
    },
  },
  {
    // the shared layers import no role's values (kube may name relay types)
    files: ['src/util/**/*.ts', 'src/kube/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [...ROLES, 'agent', 'cli'].flatMap((r) => [`../${r}/*`, `../../${r}/*`]),
              allowTypeImports: true,
              message: 'src/util and src/kube are below the roles: they import only types from them.',
            },
          ],
        },
      ],
    },
  },
  {
    // only src/engine/native.ts loads the addon
    files: ['src/**/*.ts'],
    ignores: ['src/engine/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/engine/native.js', '**/native/build/*'], message: 'Only src/engine/native.ts loads the addon; use the Engine facade (src/engine/index.ts).' }] },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/engine/native.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        NO_DEFAULT_EXPORT,
        { selector: "CallExpression[callee.name='createRequire']", message: 'Only src/engine/native.ts loads native code (the addon).' },
        ...PCI_REGEX,
      ],
    },
  },
  {
    // identifiers.ts is the one place PCI addresses are spelled as patterns
    files: ['src/util/identifiers.ts'],
    rules: { 'no-restricted-syntax': ['error', NO_DEFAULT_EXPORT] },
  },
);
