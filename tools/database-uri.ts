/** The database a MongoDB connection string names, and whether MongoDB takes that name. */
/** MongoDB's rules for database names (no '/\\. "$*<>:|?' or NUL, at most 63 bytes). */
export function databaseNameProblem (name: string): string | undefined {
  if (/[/\\. "$*<>:|?\0]/.test(name)) return 'must not contain any of / \\ . " $ * < > : | ? space or NUL'
  if (Buffer.byteLength(name) > 63) return 'must be at most 63 bytes'
  return undefined
}

/** The database named in a connection string's path, if any (`mongodb://host:port/name?opts`); throws on a broken %-escape. */
export function databaseNameOf (uri: string): string | undefined {
  const afterScheme = uri.slice(uri.indexOf('://') + 3)
  const slash = afterScheme.indexOf('/')
  if (slash === -1) return undefined
  const name = decodeURIComponent(afterScheme.slice(slash + 1).split('?')[0] ?? '')
  return name === '' ? undefined : name
}
