/**
 * `npm run token`: prints a SUPERADMIN token for the development server
 * (JWT_SECRET if set, else the generated development secret).
 * Options: --role ROLE, --sub USER_ID, --expires 1h.
 */
import { parseArgs } from 'node:util'
import { DEMO_ADMIN_ID, developmentSecret } from './development.js'
import { mintToken } from '../tools/tokens.js'

const { values } = parseArgs({
  options: {
    role: { type: 'string', default: 'SUPERADMIN' },
    sub: { type: 'string', default: DEMO_ADMIN_ID },
    expires: { type: 'string', default: '1h' }
  }
})
const secret = process.env['JWT_SECRET'] ?? await developmentSecret()
console.log(await mintToken(secret, { sub: values.sub, role: values.role }, values.expires))
