/**
 * A TCP proxy in front of the test database, for tests of what the store does
 * when connections break: it can hold what clients send (the command waits,
 * unsent, in the proxy) and cut every connection at once, as a network fault
 * or a restarting load balancer would.
 */
import { createServer, connect, type Server, type Socket } from 'node:net'
import { once } from 'node:events'

export interface TcpProxy {
  port: number
  /** Holds client bytes from now on; resolves once a chunk matching `match` (any chunk when omitted) is held. */
  hold: (match?: (chunk: Buffer) => boolean) => Promise<void>
  /** Destroys every connection made so far (held bytes are dropped) and forwards again. */
  cut: () => void
  /** Cuts every connection and drops each new one at once, as a dead database would, until `up`. */
  down: () => void
  up: () => void
  close: () => Promise<void>
}

export async function startTcpProxy (upstream: { host: string, port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  let holding: { match: (chunk: Buffer) => boolean, seen: () => void } | undefined
  let isDown = false
  const server: Server = createServer((client) => {
    if (isDown) {
      client.destroy()
      return
    }
    const database = connect(upstream.port, upstream.host)
    for (const socket of [client, database]) {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
      socket.on('error', () => {}) // a cut connection errors on both sides: expected here
    }
    client.on('data', (chunk: Buffer) => {
      if (holding === undefined) {
        database.write(chunk)
        return
      }
      if (holding.match(chunk)) holding.seen()
    })
    database.on('data', (chunk: Buffer) => client.write(chunk))
    client.on('close', () => database.destroy())
    database.on('close', () => client.destroy())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP port')

  return {
    port: address.port,
    hold: async (match = () => true) => await new Promise<void>((resolve) => {
      holding = { match, seen: resolve }
    }),
    cut: () => {
      holding = undefined
      for (const socket of sockets) socket.destroy()
    },
    down: () => {
      isDown = true
      holding = undefined
      for (const socket of sockets) socket.destroy()
    },
    up: () => { isDown = false },
    close: async () => {
      holding = undefined
      for (const socket of sockets) socket.destroy()
      server.close()
      await once(server, 'close')
    }
  }
}

/** Host and port of the first server in a `mongodb://` connection string. */
export function firstHost (uri: string): { host: string, port: number } {
  const match = /^mongodb:\/\/(?:[^@/]*@)?([^:/,?]+)(?::(\d+))?/.exec(uri)
  if (match === null) throw new Error(`not a mongodb:// connection string with a host: ${uri}`)
  return { host: match[1]!, port: Number(match[2] ?? 27017) }
}
