// Writes the JSON Schema files kept in the repository from their TypeScript sources.
import { writeFileSync } from 'node:fs';
import { agentConfigSchema } from '../src/agent/config/schema.js';

writeFileSync('schemas/agent-config.schema.json', JSON.stringify(agentConfigSchema, null, 2) + '\n');
console.log('wrote schemas/agent-config.schema.json');
