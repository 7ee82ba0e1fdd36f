/**
 * The development database of `npm start` (no MONGODB_URI): mongo-java-server with its H2
 * backend, its data kept in one file under DEV_DATA_DIR so a restart finds what was assigned
 * before. The test runner never comes here: its databases stay in memory.
 */
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startMongo, type RunningMongo } from '../dev-database/index.js'
import { ConfigError } from './config.js'

/** The H2 MVStore file inside the data folder. */
export const DEVELOPMENT_DATA_FILE = 'mongo-java-server.h2.mv.db'

export interface DevelopmentDatabaseSettings {
  dataDir: string
  /** Remove the kept data before starting. */
  fresh: boolean
}

export interface DevelopmentDatabase extends RunningMongo {
  dataFile: string
}

/** The server's command line: only `--fresh` (npm start -- --fresh); anything else is a ConfigError. */
export function readServerArguments (argv: readonly string[]): { fresh: boolean } {
  try {
    const { values } = parseArgs({ args: [...argv], options: { fresh: { type: 'boolean', default: false } }, strict: true, allowPositionals: false })
    return { fresh: values.fresh }
  } catch (error) {
    throw new ConfigError([`${error instanceof Error ? error.message : String(error)} (the server takes one argument, --fresh: start the development database empty)`])
  }
}

export async function startDevelopmentDatabase (settings: DevelopmentDatabaseSettings, log: (line: string) => void): Promise<DevelopmentDatabase> {
  const dataFile = join(settings.dataDir, DEVELOPMENT_DATA_FILE)
  await mkdir(settings.dataDir, { recursive: true })
  if (settings.fresh) {
    await rm(dataFile, { force: true })
    log(`fresh start: removed ${dataFile}`)
  }
  try {
    return { ...await startMongo({ dataFile, log }), dataFile }
  } catch (error) {
    // No silent fallback to an in-memory database: the developer would lose data without noticing.
    throw new Error(`the development database (mongo-java-server with H2, data in ${dataFile}) did not start: ${error instanceof Error ? error.message : String(error)}. ` +
      'It needs Java 17+ and Maven (npm run db:install fetches it); is another `npm start` using the same DEV_DATA_DIR? Or set MONGODB_URI and JWT_SECRET to use a MongoDB of your own.')
  }
}
