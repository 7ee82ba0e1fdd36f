/**
 * What the security review found held and must keep holding, on the real
 * server process over raw sockets: encoded separators and traversal in the
 * path, gzip, chunked bodies over the limit and CL+TE smuggling. Every
 * hostile request that could write is followed by a look at the stored data.
 * The in-process items: test/reliability/keep-*.test.ts.
 */
import { once } from 'node:events'
import net from 'node:net'
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib'
import { ObjectId } from 'mongodb'
import t from 'tap'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'
import { startStandalone, type StandaloneServer } from './helper-server.js'
import { createSigner, phoneNumbersUrl, seedFixture } from '../helper.js'
import { contractProblem, snapshot, STACK_TRACE } from '../reliability/keep-helper.js'

// One server process, a few hundred requests over raw sockets.
t.setTimeout(120_000)

/** What a raw socket received, and whether the server closed it before `waitMs`. */
interface RawAnswer {
  received: string
  /** Every HTTP status line's code, in order. */
  statuses: number[]
  closedByServer: boolean
  /** The body of the first response (up to its Content-Length). */
  body: string
}

async function rawRequest (port: number, data: string | Buffer, waitMs = 5000): Promise<RawAnswer> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let received = ''
  let closedByServer = false
  socket.on('data', (chunk: Buffer) => { received += chunk.toString('latin1') })
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => {
    socket.once('end', () => { closedByServer = true; resolve() })
    socket.once('close', () => { closedByServer = true; resolve() })
  })
  socket.write(data)
  let timer: NodeJS.Timeout | undefined
  await Promise.race([closed, new Promise((resolve) => { timer = setTimeout(resolve, waitMs) })])
  clearTimeout(timer)
  socket.destroy()
  const statuses = [...received.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1]))
  const headEnd = received.indexOf('\r\n\r\n')
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(received.slice(0, headEnd))?.[1] ?? -1)
  const rest = headEnd === -1 ? '' : received.slice(headEnd + 4)
  return { received, statuses, closedByServer, body: length >= 0 ? rest.slice(0, length) : rest }
}

async function stop (server: StandaloneServer): Promise<void> {
  if (server.child.exitCode !== null) return
  const gone = once(server.child, 'close')
  server.child.kill('SIGTERM')
  await gone
}

t.test('the real server process, over raw sockets', async (t) => {
  const secret = 'keep-test-Zq8vR3mW1xT6yL0pK4nB7cF2hJ9dG5sA'
  const { db, dbName } = await createTestDatabase(t)
  const fixture = await seedFixture(db)
  const server = await startStandalone({ MONGODB_URI: uriForDatabase(dbName), JWT_SECRET: secret, LOG_LEVEL: 'silent' })
  t.teardown(() => stop(server))
  const signer = await createSigner(secret)
  t.teardown(() => signer.close())
  const authorization = `Bearer ${signer.sign({ sub: fixture.adminId, role: 'SUPERADMIN' })}`
  const org = fixture.organizationId
  const other = fixture.otherOrganizationId
  const users = db.collection('users')
  const numbersOf = async (userId: string): Promise<string[]> => (((await users.findOne({ _id: new ObjectId(userId) }))?.['phoneNumbers'] ?? []) as Array<{ phoneNumber: string }>).map((entry) => entry.phoneNumber)
  const assignBody = (phoneNumber: string): string => JSON.stringify({ targetUserId: fixture.userId, provider: 'twilio', phoneNumber })
  const head = (method: string, path: string, lines: string[]): string => `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${lines.map((line) => `${line}\r\n`).join('')}\r\n`

  // A number the user holds, so a DELETE that got through would show.
  const seeded = await rawRequest(server.port, head('POST', phoneNumbersUrl(org), [`Authorization: ${authorization}`, 'Content-Type: application/json', `Content-Length: ${assignBody('+14165550100').length}`, 'Connection: close']) + assignBody('+14165550100'))
  t.equal(seeded.statuses[0], 200, 'control: an ordinary assign over a raw socket is 200')

  t.test('traversal and encoded separators in the path: 400 or 404, never another organization, nothing written', async (t) => {
    const before = await snapshot(db)
    const paths = [
      '/api/organizations/..%2F..%2Fx/phone-numbers',
      `/api/organizations/..%2F${org}/phone-numbers`,
      `/api/organizations/${other}%2F..%2F${org}/phone-numbers`,
      `/api/organizations/${org}%2F..%2F${other}/phone-numbers`,
      `/api/organizations/${org}%2F/phone-numbers`,
      `/api/organizations/%2F${org}/phone-numbers`,
      `/api/organizations/${org}%2Fphone-numbers`,
      `/api%2Forganizations%2F${org}%2Fphone-numbers`,
      `/api/organizations/${other}%5C..%5C${org}/phone-numbers`,
      `/api/organizations/..%5C${org}/phone-numbers`,
      `/api/organizations/${other}\\..\\${org}/phone-numbers`,
      `/api/organizations/..;/${org}/phone-numbers`,
      `/api/organizations/${other}/..;/${org}/phone-numbers`,
      `/api/organizations/${org};/phone-numbers`,
      `/api/organizations/${org}/..;/phone-numbers`,
      `/api/organizations/%252e%252e%252f${org}/phone-numbers`,
      `/api/organizations/${other}%252F..%252F${org}/phone-numbers`,
      `/api/organizations/${org}%255C/phone-numbers`,
      `/api/organizations/%25%32%65%25%32%65%25%32%66${org}/phone-numbers`,
      `/api/organizations/${other}/../${org}/phone-numbers`,
      `/api/organizations/./${org}/phone-numbers`,
      `/api/organizations/%2e%2e/${org}/phone-numbers`,
      `/api/organizations/${other}/%2e%2e/${org}/phone-numbers`,
      `/api/organizations/${org}%00/phone-numbers`,
      `/api/organizations/${org}/phone-numbers/..%2F..%2F${other}/phone-numbers`
    ]
    let tried = 0
    for (const path of paths) {
      for (const method of ['GET', 'POST', 'DELETE'] as const) {
        const body = method === 'GET' ? '' : assignBody(method === 'POST' ? `+1416555${String(2000 + tried)}` : '+14165550100')
        const answer = await rawRequest(server.port, head(method, path, [`Authorization: ${authorization}`, 'Content-Type: application/json', `Content-Length: ${body.length}`, 'Connection: close']) + body)
        const status = answer.statuses[0] ?? 0
        t.ok(status === 400 || status === 404, `${method} ${path}: ${status}`)
        t.notMatch(answer.body, /phoneNumbers|success|\+1416555/, `${method} ${path}: no assignment in the answer`)
        t.notMatch(answer.received, STACK_TRACE, `${method} ${path}: no stack trace`)
        if (status === 400) t.equal(contractProblem(status, answer.body, [400]), undefined, `${method} ${path}: { error, details }`)
        tried++
      }
    }
    t.same(await snapshot(db), before, `nothing written after ${tried} requests`)
    const control = await rawRequest(server.port, head('GET', phoneNumbersUrl(org), [`Authorization: ${authorization}`, 'Connection: close']))
    t.equal(control.statuses[0], 200, 'control: the plain path answers 200 on the same server')
  })

  t.test('compressed bodies are not decoded: 400 or 415, never stored', async (t) => {
    const cases: Array<[string, string, (body: string) => Buffer]> = [
      ['gzip', 'gzip', (body) => gzipSync(body)],
      ['GZIP spelt in capitals', 'GZIP', (body) => gzipSync(body)],
      ['x-gzip', 'x-gzip', (body) => gzipSync(body)],
      ['deflate', 'deflate', (body) => deflateSync(body)],
      ['br', 'br', (body) => brotliCompressSync(body)],
      ['gzip twice', 'gzip, gzip', (body) => gzipSync(gzipSync(body))]
    ]
    let n = 0
    for (const [name, encoding, compress] of cases) {
      const phoneNumber = `+1416555${String(3000 + n++)}`
      const payload = compress(assignBody(phoneNumber))
      const answer = await rawRequest(server.port, Buffer.concat([Buffer.from(head('POST', phoneNumbersUrl(org), [`Authorization: ${authorization}`, 'Content-Type: application/json', `Content-Encoding: ${encoding}`, `Content-Length: ${payload.length}`, 'Connection: close'])), payload]))
      t.equal(contractProblem(answer.statuses[0] ?? 0, answer.body, [400, 415]), undefined, `${name}: ${answer.statuses[0]} ${answer.body}`)
      t.notOk((await numbersOf(fixture.userId)).includes(phoneNumber), `${name}: not stored`)
    }
  })

  t.test('a chunked body over the body limit is 413 and closes the connection; one under it is accepted', async (t) => {
    const chunked = (body: string): string => `${(body.match(/[\s\S]{1,1000}/g) ?? []).map((chunk) => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('')}0\r\n\r\n`
    const withNote = (phoneNumber: string, note: number): string => JSON.stringify({ targetUserId: fixture.userId, provider: 'sinch', phoneNumber, note: 'x'.repeat(note) })
    const lines = [`Authorization: ${authorization}`, 'Content-Type: application/json', 'Transfer-Encoding: chunked']

    const under = await rawRequest(server.port, head('POST', phoneNumbersUrl(org), [...lines, 'Connection: close']) + chunked(withNote('+14165554001', 8000)))
    t.equal(under.statuses[0], 200, 'control: 8 kB in 1 kB chunks is accepted')
    t.ok((await numbersOf(fixture.userId)).includes('+14165554001'), 'control: stored')

    for (const [name, size] of [['20 kB', 20_000], ['200 kB', 200_000]] as const) {
      const answer = await rawRequest(server.port, head('POST', phoneNumbersUrl(org), lines) + chunked(withNote('+14165554002', size)))
      t.equal(contractProblem(answer.statuses[0] ?? 0, answer.body, [413]), undefined, `${name}: ${answer.statuses[0]} ${answer.body}`)
      t.same(answer.statuses, [413], `${name}: one answer`)
      t.ok(answer.closedByServer, `${name}: the server closed the connection`)
    }
    t.notOk((await numbersOf(fixture.userId)).includes('+14165554002'), 'nothing over the limit stored')
  })

  t.test('Content-Length with Transfer-Encoding (request smuggling): 400 from the HTTP parser, connection closed, nothing smuggled through', async (t) => {
    let n = 0
    const smuggled = (): { phoneNumber: string, text: string } => {
      const phoneNumber = `+1416555${String(5000 + n++)}`
      const body = assignBody(phoneNumber)
      return { phoneNumber, text: head('POST', phoneNumbersUrl(org), [`Authorization: ${authorization}`, 'Content-Type: application/json', `Content-Length: ${body.length}`]) + body }
    }
    const control = smuggled()
    const alone = await rawRequest(server.port, control.text.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'))
    t.equal(alone.statuses[0], 200, 'control: the inner request alone is a valid assign')
    t.ok((await numbersOf(fixture.userId)).includes(control.phoneNumber), 'control: and is stored')

    const base = [`Authorization: ${authorization}`, 'Content-Type: application/json']
    // [name, the outer request's framing headers, its body around the inner request]
    const cases: Array<[string, (inner: string) => [string[], string]]> = [
      ['CL.TE: Content-Length covers the inner request, chunked ends before it', (inner) => [[`Content-Length: ${5 + inner.length}`, 'Transfer-Encoding: chunked'], `0\r\n\r\n${inner}`]],
      ['TE.CL: the inner request inside a chunk, Content-Length stops before it', (inner) => [['Transfer-Encoding: chunked', 'Content-Length: 4'], `${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`]],
      ['Content-Length first, then TRANSFER-ENCODING: CHUNKED', (inner) => [[`Content-Length: ${5 + inner.length}`, 'TRANSFER-ENCODING: CHUNKED'], `0\r\n\r\n${inner}`]],
      ['Transfer-Encoding: xchunked with Content-Length', (inner) => [['Transfer-Encoding: xchunked', 'Content-Length: 5'], `0\r\n\r\n${inner}`]],
      ['space before the colon of Transfer-Encoding', (inner) => [['Transfer-Encoding : chunked', `Content-Length: ${5 + inner.length}`], `0\r\n\r\n${inner}`]],
      ['Transfer-Encoding folded onto a second line', (inner) => [['Transfer-Encoding:', ' chunked', `Content-Length: ${5 + inner.length}`], `0\r\n\r\n${inner}`]],
      ['Transfer-Encoding with a tab and Content-Length', (inner) => [['Transfer-Encoding:\tchunked', `Content-Length: ${5 + inner.length}`], `0\r\n\r\n${inner}`]],
      ['two Transfer-Encoding headers and Content-Length', (inner) => [['Transfer-Encoding: chunked', 'Transfer-Encoding: identity', `Content-Length: ${5 + inner.length}`], `0\r\n\r\n${inner}`]],
      ['chunked not last (chunked, identity)', (inner) => [['Transfer-Encoding: chunked, identity'], `0\r\n\r\n${inner}`]],
      ['two different Content-Length headers', (inner) => [['Content-Length: 5', `Content-Length: ${5 + inner.length}`], `0\r\n\r\n${inner}`]],
      ['bare LF ending the last chunk', (inner) => [['Transfer-Encoding: chunked'], `0\n\n${inner}`]]
    ]
    const smuggledNumbers: string[] = []
    for (const [name, frame] of cases) {
      const inner = smuggled()
      smuggledNumbers.push(inner.phoneNumber)
      const [framing, body] = frame(inner.text)
      const answer = await rawRequest(server.port, head('POST', phoneNumbersUrl(org), [...base, ...framing]) + body)
      t.same(answer.statuses, [400], `${name}: one answer, 400`)
      t.ok(answer.closedByServer, `${name}: connection closed by the server`)
      t.notMatch(answer.received, STACK_TRACE, `${name}: no stack trace`)
    }
    // Give a request that did slip through time to land before looking.
    await new Promise((resolve) => setTimeout(resolve, 300))
    const held = await numbersOf(fixture.userId)
    t.same(smuggledNumbers.filter((phoneNumber) => held.includes(phoneNumber)), [], 'no smuggled request was executed')
  })
})
