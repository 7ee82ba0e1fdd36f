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

function hasJars (dir: string): boolean {
  return existsSync(dir) && readdirSync(dir).some((name) => name.startsWith('mongo-java-server-core-') && name.endsWith('.jar'))
}

/**
 * Fetches mongo-java-server 1.47.0 and its dependencies (netty, slf4j) from Maven Central into
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

export async function startJavaServer (log: Log): Promise<RunningMongo> {
  await ensureJavaServer(log)
  const port = await freePort()
  const dir = await freshDataDir('java')
  const server = spawnServer('java', [
    // The data is in memory; the folder only holds the JVM's own temp files.
    `-Djava.io.tmpdir=${dir}`,
    // A short-lived test server: start fast, don't reserve much memory.
    '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-XX:-UsePerfData', '-Xss512k', '-Xmx512m',
    '-cp', `${libDir()}/*:${classesDir()}`,
    MAIN_CLASS, '127.0.0.1', String(port),
  ], dir)
  return await whenReady(server, 'java', port)
}
