/**
 * Whether the driver knows that no server of the deployment can be selected.
 * Read from the driver's own monitoring (topology events), never probed: a
 * failed operation marks its server unknown at once, and the monitor marks it
 * known again as soon as a heartbeat succeeds. While it is down, operations
 * that were queued behind one on the same number or user (per-key-queue.ts)
 * answer at once instead of each waiting out a full server selection timeout.
 * One operation a second still goes through: its server selection is what
 * makes the driver's monitor look again, so the recovery is seen promptly.
 */
import type { Db, MongoClient, TopologyDescriptionChangedEvent } from 'mongodb'

/** Named like the driver's own unavailability errors, which hosts and the plugin match by name. */
export class DatabaseUnavailableError extends Error {
  override name = 'MongoServerSelectionError'
  constructor () {
    super('No MongoDB server is selectable right now (the driver has marked every server unknown); not waiting for one')
  }
}

export interface DatabaseAvailability {
  /** Throws `DatabaseUnavailableError` while no server is selectable. */
  check: () => void
  isDown: () => boolean
}

const PROBE_INTERVAL_MS = 1000
/** How long every server must have stayed unknown: one failed connection marks its server unknown for a moment, and the driver reconnects at once. */
const DOWN_AFTER_MS = 1000
// One watcher per client, however many stores share it (one listener each would pile up).
const watchers = new WeakMap<MongoClient, DatabaseAvailability>()

export function watchAvailability (db: Db): DatabaseAvailability {
  const client = db.client
  const known = watchers.get(client)
  if (known !== undefined) return known
  let unknownSince: number | undefined
  let lastThrough = 0
  const isDown = (): boolean => unknownSince !== undefined && Date.now() - unknownSince >= DOWN_AFTER_MS
  function onTopology (event: TopologyDescriptionChangedEvent): void {
    const servers = [...event.newDescription.servers.values()]
    // Unknown: not reached yet, or its last operation or heartbeat failed.
    const unknown = servers.length > 0 && servers.every((server) => server.type === 'Unknown')
    if (!unknown) unknownSince = undefined
    else unknownSince ??= Date.now()
  }
  client.on('topologyDescriptionChanged', onTopology)
  const availability: DatabaseAvailability = {
    check: () => {
      if (!isDown()) return
      const now = Date.now()
      if (now - lastThrough < PROBE_INTERVAL_MS) throw new DatabaseUnavailableError()
      lastThrough = now
    },
    isDown
  }
  watchers.set(client, availability)
  return availability
}
