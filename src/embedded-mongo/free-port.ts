import { createServer } from 'node:net'

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
