/**
 * npm run db:install [-- ferretdb java mongod]: builds FerretDB and fetches mongo-java-server
 * into .cache/ ahead of the tests (default: ferretdb java; mongod needs internet to download).
 */
import { installBackends, parseBackendName, type LocalBackendName } from '../dev-database/index.js'

const names: LocalBackendName[] = []
for (const arg of process.argv.slice(2)) {
  const name = parseBackendName(arg)
  if (name === undefined || name === 'uri') throw new Error(`nothing to install for "${arg}"`)
  names.push(name)
}

const results = await installBackends(names.length > 0 ? names : undefined)
for (const { backend, milliseconds } of results) {
  console.log(`${backend}: ready (${(milliseconds / 1000).toFixed(1)} s)`)
}
