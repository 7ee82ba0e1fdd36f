// A webhook receiver for the phone-number change events, with nothing but Node.
//   WEBHOOK_SECRET=... node examples/webhook-receiver.mjs   (listens on 127.0.0.1:3000)
import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer } from 'node:http'

const secret = process.env.WEBHOOK_SECRET
const seen = new Set() // use a table with a unique key on the event id in production

createServer((req, res) => {
  const chunks = []
  req.on('data', (chunk) => chunks.push(chunk))
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8') // verify the raw body, before parsing it
    const timestamp = req.headers['x-timestamp'] ?? ''
    const expected = Buffer.from('sha256=' + createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex'))
    const given = Buffer.from(req.headers['x-signature'] ?? '')
    const fresh = Math.abs(Date.now() / 1000 - Number(timestamp)) < 300 // refuse replays of old requests
    if (!fresh || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      res.writeHead(401).end()
      return
    }
    const event = JSON.parse(body)
    if (!seen.has(event.id)) { // delivery is at least once: the same id may come again
      seen.add(event.id)
      console.log(event.type, event.phoneNumber, event.userId, event.after?.label ?? '')
    }
    res.writeHead(204).end() // any 2xx; anything else is retried with backoff
  })
}).listen(3000, '127.0.0.1')
