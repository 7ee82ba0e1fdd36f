/**
 * Child-process pipes are typed as plain streams but are sockets at run time; unref()ing
 * them lets a program that forgot stop() exit (the exit handlers then stop the server).
 */
export function unref (handle: unknown): void {
  if (typeof handle === 'object' && handle !== null && 'unref' in handle && typeof handle.unref === 'function') {
    handle.unref()
  }
}
