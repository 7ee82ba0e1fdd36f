import { existsSync, readdirSync, statSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { cacheDir, freePort, freshDataDir, javaSourceDir } from './paths.js'
import { runCommand } from './run-command.js'
import { spawnServer, whenReady } from './server-process.js'
import type { Log, RunningMongo } from './types.js'

const MAIN_CLASS = 'EmbeddedMongoJavaServer'

function libDir (): string {
  return cacheDir('mongo-java-server', 'lib')
}

function classesDir (): string {
  return cacheDir('mongo-java-server', 'classes')
}

// One jar per artifact of pom.xml that the launcher needs: a lib/ fetched before one was added is fetched again.
const REQUIRED_JARS = ['mongo-java-server-core-', 'mongo-java-server-memory-backend-', 'mongo-java-server-h2-backend-', 'h2-']

function hasJars (dir: string): boolean {
  if (!existsSync(dir)) return false
  const names = readdirSync(dir)
  return REQUIRED_JARS.every((prefix) => names.some((name) => name.startsWith(prefix) && name.endsWith('.jar')))
}

/**
 * Fetches mongo-java-server 1.47.0, its in-memory and H2 backends and their dependencies (netty, slf4j, h2) from Maven Central into
 * .cache/mongo-java-server/lib, using the committed pom.xml, and compiles our launcher class.
 * Both steps are skipped when their output is already there and up to date.
 */
export async function ensureJavaServer (log: Log): Promise<void> {
  const lib = libDir()
  if (!hasJars(lib)) {
    log('fetching mongo-java-server 1.47.0 with Maven, first time only')
    await rm(lib, { recursive: true, force: true })
    await runCommand('mvn', [
      '-q', '-B', '-Dstyle.color=never',
      '-f', join(javaSourceDir(), 'pom.xml'),
      'dependency:copy-dependencies',
      '-DincludeScope=runtime',
      `-DoutputDirectory=${lib}`,
    ])
    if (!hasJars(lib)) throw new Error(`mvn finished but ${lib} has no mongo-java-server jars`)
  }

  const source = join(javaSourceDir(), `${MAIN_CLASS}.java`)
  const compiled = join(classesDir(), `${MAIN_CLASS}.class`)
  // Compiled once into .cache rather than the single-file source launcher: saves ~1 s per start.
  if (!existsSync(compiled) || statSync(compiled).mtimeMs < statSync(source).mtimeMs) {
    await mkdir(classesDir(), { recursive: true })
    await runCommand('javac', ['-cp', `${lib}/*`, '-d', classesDir(), source])
  }
}

export interface JavaServerOptions {
  /**
   * Keep the data in this H2 MVStore file (created when missing) instead of in memory. It lives
   * outside the server's fresh folder, which stop() removes.
   */
  dataFile?: string | undefined
}

export async function startJavaServer (log: Log, options: JavaServerOptions = {}): Promise<RunningMongo> {
  await ensureJavaServer(log)
  const port = await freePort()
  const dir = await freshDataDir('java')
  const server = spawnServer('java', [
    // The folder holds the JVM's own temp files; the data is in memory or in `dataFile`.
    `-Djava.io.tmpdir=${dir}`,
    // A short-lived test server: start fast, don't reserve much memory.
    '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-XX:-UsePerfData', '-Xss512k', '-Xmx512m',
    '-cp', `${libDir()}/*:${classesDir()}`,
    MAIN_CLASS, '127.0.0.1', String(port),
    ...(options.dataFile === undefined ? [] : [options.dataFile]),
  ], dir)
  return await whenReady(server, 'java', port)
}
