/** Where the launcher keeps things, and the fresh folder and port each server gets. */
import { existsSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The project root is the nearest folder above this file with a package.json; that works
 * both from src/ (tsx) and from dist/src/ (compiled), which have no package.json of their own.
 */
export function projectRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir
    const parent = dirname(dir)
    if (parent === dir) throw new Error('embedded-mongo: no package.json above ' + fileURLToPath(import.meta.url))
    dir = parent
  }
}

/** Built and downloaded tools live in the git-ignored .cache/ so they survive between runs. */
export function cacheDir (...parts: string[]): string {
  return join(projectRoot(), '.cache', ...parts)
}

/** Committed helper sources (pom.xml, the Java launcher) are read from the source tree, also when running from dist/. */
export function javaSourceDir (): string {
  return join(projectRoot(), 'dev-database', 'java')
}

/** Every server gets its own empty data folder, so runs never see each other's data. */
export async function freshDataDir (backend: string): Promise<string> {
  return await mkdtemp(join(tmpdir(), `embedded-mongo-${backend}-`))
}

/**
 * Asks the kernel for an unused loopback port. Another process could take it before the
 * server binds it; that shows up as a failed start with the server's own message.
 */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => { port > 0 ? resolve(port) : reject(new Error('could not get a free port')) })
    })
  })
}
