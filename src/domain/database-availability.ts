/**
 * Whether the driver knows that no server of the deployment can be selected.
 * Read from the driver's own monitoring, never probed: a server counts as down
 * once the topology has marked it unknown and its monitor's last heartbeat
 * failed too (one failed connection alone marks a server unknown for a moment
 * while the database is fine). While every server is down, operations that
 * waited in a queue behind one on the same number or user (per-key-queue.ts)
 * answer at once instead of each waiting out a full server selection timeout.
 * One operation a second still goes through, so the recovery is seen promptly,
 * but never one that already waited in a queue: it sat behind work that was
 * stuck on the outage, and a server selection of its own would double its wait.
 */
import type { Db, MongoClient, ServerHeartbeatFailedEvent, ServerHeartbeatSucceededEvent, TopologyDescriptionChangedEvent } from 'mongodb'

/** Named like the driver's own unavailability errors, which hosts and the plugin match by name. */
export class DatabaseUnavailableError extends Error {
  override name = 'MongoServerSelectionError'
  constructor () {
    super('No MongoDB server is selectable right now (the driver has marked every server unknown); not waiting for one')
  }
}

export interface DatabaseAvailability {
  /**
   * Throws `DatabaseUnavailableError` while no server is selectable, except for
   * one operation a second that has not waited in a queue (`waitingSince`, from Date.now()).
   */
  check: (waitingSince: number) => void
  isDown: () => boolean
}

const PROBE_INTERVAL_MS = 1000
/** An operation that waited longer than this in a queue is not sent to find out whether the database is back. */
const PROBE_MAX_QUEUE_WAIT_MS = 250
// One watcher per client, however many stores share it (one listener each would pile up).
const watchers = new WeakMap<MongoClient, DatabaseAvailability>()

export function watchAvailability (db: Db): DatabaseAvailability {
  const client = db.client
  const known = watchers.get(client)
  if (known !== undefined) return known
  let unknown: string[] = []
  const failedHeartbeats = new Set<string>()
  let lastThrough = 0
  const isDown = (): boolean => unknown.length > 0 && unknown.every((address) => failedHeartbeats.has(address))
  client.on('topologyDescriptionChanged', (event: TopologyDescriptionChangedEvent) => {
    const servers = [...event.newDescription.servers.values()]
    unknown = servers.length > 0 && servers.every((server) => server.type === 'Unknown') ? servers.map((server) => server.address) : []
  })
  client.on('serverHeartbeatFailed', (event: ServerHeartbeatFailedEvent) => { failedHeartbeats.add(event.connectionId) })
  client.on('serverHeartbeatSucceeded', (event: ServerHeartbeatSucceededEvent) => { failedHeartbeats.delete(event.connectionId) })
  const availability: DatabaseAvailability = {
    check: (waitingSince) => {
      if (!isDown()) return
      const now = Date.now()
      if (now - waitingSince > PROBE_MAX_QUEUE_WAIT_MS || now - lastThrough < PROBE_INTERVAL_MS) throw new DatabaseUnavailableError()
      lastThrough = now
    },
    isDown
  }
  watchers.set(client, availability)
  return availability
}
