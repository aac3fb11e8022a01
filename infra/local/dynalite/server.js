#!/usr/bin/env node
// Starts dynalite in memory on 127.0.0.1 and a port the kernel picks (port 0,
// so no other process can take it between choosing and binding), then writes
// that port to the file named by the first argument (written whole, through a
// rename, so a reader never sees half of it). Stops on SIGTERM/SIGINT.
//
//   node infra/local/dynalite/server.js PORT_FILE [CREATE_TABLE_MS]
//
// Tables stay CREATING for CREATE_TABLE_MS (default 500, dynalite's own), as
// on DynamoDB: a client must wait for ACTIVE.
'use strict'
const fs = require('fs')
const dynalite = require('dynalite')

const portFile = process.argv[2]
if (!portFile) {
  console.error('usage: server.js PORT_FILE [CREATE_TABLE_MS]')
  process.exit(2)
}
const createTableMs = process.argv[3] === undefined ? 500 : Number(process.argv[3])
if (!Number.isInteger(createTableMs) || createTableMs < 0) {
  console.error(`server.js: CREATE_TABLE_MS must be a whole number of milliseconds, got ${process.argv[3]}`)
  process.exit(2)
}

const server = dynalite({ createTableMs, deleteTableMs: createTableMs, updateTableMs: createTableMs })
server.on('error', (err) => {
  console.error(`server.js: dynalite failed: ${err.stack || err}`)
  process.exit(1)
})
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address()
  const tmp = `${portFile}.tmp${process.pid}`
  fs.writeFileSync(tmp, `${port}\n`)
  fs.renameSync(tmp, portFile)
  console.error(`dynalite ${require('dynalite/package.json').version} listening on http://127.0.0.1:${port}`)
})

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0))
}
