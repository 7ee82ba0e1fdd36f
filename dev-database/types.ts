/** The kinds of MongoDB-wire servers the launcher knows. 'uri' means "use MONGODB_URI as is". */
export type MongoBackendName = 'mongod' | 'ferretdb' | 'java' | 'uri'

export type LocalBackendName = Exclude<MongoBackendName, 'uri'>
/**
 * The backends the launcher starts itself, in order of preference: a real
 * mongod first; then mongo-java-server, whose single-document updates are
 * atomic and which does about 480 assigns/s here; FerretDB 1.24 last: its
 * updates are not atomic across connections and it does 10-25 assigns/s
 * (measured on this project's bench), and its first start builds it (~3 min).
 */
export const LOCAL_BACKEND_ORDER: readonly LocalBackendName[] = ['mongod', 'java', 'ferretdb']

export const MONGO_BACKEND_NAMES: readonly MongoBackendName[] = ['mongod', 'ferretdb', 'java', 'uri']

export interface RunningMongo {
  uri: string
  backend: MongoBackendName
  serverVersion: string
  stop(): Promise<void>
}

export interface StartMongoOptions {
  backend?: MongoBackendName | undefined
  /**
   * Keep the data in this file (mongo-java-server's H2 backend, so backend 'java' or none), for
   * the standalone server's development database. Unset, every backend keeps its data in memory
   * or a temp folder, as the test runner wants.
   */
  dataFile?: string | undefined
  log?: (line: string) => void
}

export type Log = (line: string) => void

/** Progress goes to stderr so it never mixes with a test runner's TAP output on stdout. */
export const defaultLog: Log = (line) => { process.stderr.write(`[embedded-mongo] ${line}\n`) }

export function isMongoBackendName (value: string): value is MongoBackendName {
  return (MONGO_BACKEND_NAMES as readonly string[]).includes(value)
}

/**
 * Turns an environment value such as TEST_MONGO_BACKEND into a backend name.
 * Empty or unset means "no preference"; anything unknown is an error rather than a silent fallback.
 */
export function parseBackendName (value: string | undefined): MongoBackendName | undefined {
  if (value === undefined || value.trim() === '') return undefined
  const name = value.trim()
  if (!isMongoBackendName(name)) {
    throw new Error(`unknown MongoDB backend "${name}": expected one of ${MONGO_BACKEND_NAMES.join(', ')}`)
  }
  return name
}

export const MONGODB_URI_HINT = 'set MONGODB_URI to a running MongoDB, e.g. MONGODB_URI=mongodb://127.0.0.1:27017/tether'

/** Error messages from child processes and drivers span lines; the launcher logs one line per attempt. */
export function oneLine (error: unknown): string {
  const text = error instanceof Error ? error.message : String(error)
  return text.replace(/\s+/g, ' ').trim()
}
