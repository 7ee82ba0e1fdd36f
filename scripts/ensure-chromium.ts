/**
 * The browser test (test/server/docs-page.test.ts) drives Debian's chromium. `npm test` sets
 * it up like the test databases: installed with apt-get when /usr/bin/chromium is missing (as
 * root, or through `sudo -n`), about 10 s. Where that cannot work (no apt, no rights), it says so
 * in one line and the browser test fails with the command to run; CHROMIUM_PATH points the test
 * at another binary.
 */
import { execFile } from 'node:child_process'
import { access } from 'node:fs/promises'
import { constants } from 'node:fs'
import { userInfo } from 'node:os'
import { promisify } from 'node:util'

const run = promisify(execFile)
const CHROMIUM = '/usr/bin/chromium'

async function exists (path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

export async function ensureChromium (log: (line: string) => void = console.log): Promise<void> {
  if (process.env['CHROMIUM_PATH'] !== undefined || await exists(CHROMIUM)) return
  const asRoot = userInfo().uid === 0
  const command = asRoot ? 'apt-get' : 'sudo'
  const prefix = asRoot ? [] : ['-n', 'apt-get']
  log('chromium: installing Debian\'s chromium for the browser test (apt-get, first time only)')
  try {
    await run(command, [...prefix, 'update', '-qq'], { timeout: 300_000 })
    await run(command, [...prefix, 'install', '-y', '-qq', '--no-install-recommends', 'chromium'], {
      timeout: 600_000,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    })
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0]
    log(`chromium: could not install it (${reason}); the browser test will fail until /usr/bin/chromium exists or CHROMIUM_PATH names a chromium`)
  }
}
