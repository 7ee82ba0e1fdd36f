/**
 * CLI: `npm run generate` — regenerates schemas/generated/* from
 * schemas/openapi.yaml (the contract). The work is done by the pure
 * `generateFiles` in ./contract-codegen/, which the drift test also runs.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { YAML_PATH, generateFiles } from './contract-codegen/index.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

const files = await generateFiles(await readFile(join(root, YAML_PATH), 'utf8'))
for (const [relativePath, content] of Object.entries(files)) {
  const target = join(root, relativePath)
  await mkdir(dirname(target), { recursive: true })
  await writeFile(target, content)
  console.log(`wrote ${relativePath}`)
}
