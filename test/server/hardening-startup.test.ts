/**
 * Findings of the security review (issue 14), at the standalone server's
 * start: development mode with a real secret, and configuration that must
 * refuse to start. The running server: hardening-running-server.test.ts.
 */
import { once } from 'node:events'
import t from 'tap'
import { spawnStandalone, startStandalone } from './helper-server.js'
import { SECRET, stop } from './hardening-helper.js'

// Server processes, one of them on an embedded database it starts itself.
t.setTimeout(180_000)

t.test('a real JWT_SECRET without MONGODB_URI does not fall back to development mode', async (t) => {
  const { child, stderr } = spawnStandalone({ MONGODB_URI: undefined, JWT_SECRET: SECRET, PORT: '0' })
  const [code] = await once(child, 'close')
  t.equal(code, 1, 'refuses to start')
  t.match(stderr.join(''), /MONGODB_URI is not set, but JWT_SECRET is/)
  t.notMatch(stderr.join(''), /export TOKEN=/, 'no token printed')
})

t.test('DEVELOPMENT_MODE=true with an operator secret runs the embedded database and prints no token', async (t) => {
  const server = await startStandalone({ MONGODB_URI: undefined, JWT_SECRET: SECRET, DEVELOPMENT_MODE: 'true', LOG_LEVEL: 'warn' }, { startTimeoutMs: 180_000 })
  // The banner comes after listen; give it a moment.
  const deadline = Date.now() + 10_000
  while (!/Development mode/.test(server.stderr.join('')) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
  await stop(server)
  const printed = server.output()
  t.match(printed, /No token is printed/, 'says why there is no token')
  t.notMatch(printed, /export TOKEN=|eyJ[\w-]+\.eyJ/, 'no token anywhere in the output')
})

t.test('configuration that must not start: every problem listed, no stack trace', async (t) => {
  const { child, stderr } = spawnStandalone({
    MONGODB_URI: 'mongodb://127.0.0.1:1/bad%E0%A4%Aname',
    JWT_SECRET: 'a'.repeat(32),
    PORT: '0x10',
    BODY_LIMIT: '1e3',
    PHONE_NUMBERS_FIELD: 'role',
    MONGODB_DATABASE: 'with.dot'
  })
  const [code] = await once(child, 'close')
  const printed = stderr.join('')
  t.equal(code, 1)
  t.match(printed, /^Invalid configuration:/m)
  t.match(printed, /MONGODB_URI has a broken %-escape/)
  t.match(printed, /JWT_SECRET looks guessable/)
  t.match(printed, /PORT=0x10 must be an integer/)
  t.match(printed, /BODY_LIMIT=1e3 must be an integer/)
  t.match(printed, /PHONE_NUMBERS_FIELD=role would overwrite a user field/)
  t.match(printed, /MONGODB_DATABASE=with\.dot must not contain/)
  t.notMatch(printed, /\n\s+at /, 'no stack trace')

  const spaces = spawnStandalone({ MONGODB_URI: 'mongodb://127.0.0.1:1/ok', JWT_SECRET: ' '.repeat(40), PORT: '0' })
  await once(spaces.child, 'close')
  t.match(spaces.stderr.join(''), /JWT_SECRET must not start or end with white space|JWT_SECRET looks guessable/, '40 spaces are refused')
  const dotted = spawnStandalone({ MONGODB_URI: 'mongodb://127.0.0.1:1/a.b', JWT_SECRET: SECRET, PORT: '0' })
  await once(dotted.child, 'close')
  t.match(dotted.stderr.join(''), /MONGODB_URI names the database "a\.b"/, 'a database name with a dot in the URI is refused')
})
