// End-to-end client for Kelp: kafkajs 2.x (pure JS).
//
//   NODE_PATH=$KELP_CACHE/kafkajs/node_modules node client.js --bootstrap HOST:PORT --topic T COMMAND
//   commands: create [--partitions N] | produce --input FILE | consume | offsets --times T1,T2,... |
//             group --group G  (a consumer-group member until stdin closes; kafkajs' round-robin assigner)
//
// The contract (commands, record file, JSON lines) is the same for every client: see tests/README.md.
// kafkajs limits: no header with a null value (left out of its record file by the harness); no
// group-less consumer, so `consume` joins a fresh consumer group (needs the group APIs); a time
// lookup that finds nothing comes back as the high watermark (admin.fetchTopicOffsetsByTimestamp).
// Codecs: gzip built in; snappy (kafkajs-snappy), lz4 (kafkajs-lz4), zstd (adapter over zstd-codec).
'use strict'
const fs = require('fs')
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const LZ4Codec = require('kafkajs-lz4')
const { ZstdCodec } = require('zstd-codec')

function parseArgs (argv) {
  const o = { partitions: 3, times: '' }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) o[argv[i].slice(2)] = argv[++i]
    else o.command = argv[i]
  }
  if (!o.bootstrap || !o.topic || !o.command) {
    console.error('usage: client.js --bootstrap HOST:PORT --topic T create|produce|consume|offsets')
    process.exit(2)
  }
  return o
}
const args = parseArgs(process.argv.slice(2))
const TOPIC = args.topic

const emit = o => process.stdout.write(JSON.stringify(o) + '\n')
const b64 = b => (b === null || b === undefined ? null : Buffer.from(b).toString('base64'))
const unb64 = s => (s === '-' ? null : Buffer.from(s, 'base64'))

function recordJson (partition, offset, timestamp, key, value, headers) {
  return { partition, offset: Number(offset), timestamp: Number(timestamp), key: b64(key), value: b64(value), headers }
}

// kafkajs headers are an object (name -> Buffer, or an array of them for a repeated name);
// the record file keeps repeated names adjacent, so this keeps their order
function headerPairs (obj) {
  const out = []
  for (const [k, v] of Object.entries(obj || {})) {
    for (const x of Array.isArray(v) ? v : [v]) out.push([k, b64(x)])
  }
  return out
}

function zstdCodec () {
  return new Promise(resolve => ZstdCodec.run(z => {
    const s = new z.Simple()
    resolve(() => ({
      async compress (encoder) { return Buffer.from(s.compress(encoder.buffer)) },
      async decompress (buffer) { return Buffer.from(s.decompress(buffer)) }
    }))
  }))
}

const CODECS = {
  none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4, zstd: CompressionTypes.ZSTD
}

async function partitionIds (admin) {
  const md = await admin.fetchTopicMetadata({ topics: [TOPIC] })
  return md.topics[0].partitions.map(p => p.partitionId).sort((a, b) => a - b)
}

async function create (kafka) {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ waitForLeaders: true, topics: [{
      topic: TOPIC,
      numPartitions: Number(args.partitions),
      replicationFactor: 1,
      // the record set has a 1 MiB value, more than Kafka's default max.message.bytes (1048588)
      configEntries: [{ name: 'max.message.bytes', value: '2097152' }]
    }]
  })
  emit({ created: TOPIC, partitions: (await partitionIds(admin)).length })
  await admin.disconnect()
}

function readGroups (path) {
  const groups = []
  for (const line of fs.readFileSync(path, 'utf8').split('\n')) {
    if (!line) continue
    const f = line.split('\t')
    const headers = {}
    const pairs = []
    for (let k = 5; k + 1 < f.length; k += 2) {
      const name = unb64(f[k]).toString('utf8')
      const v = unb64(f[k + 1])
      pairs.push([name, v])
      if (name in headers) headers[name] = [].concat(headers[name], [v])
      else headers[name] = v
    }
    const rec = { partition: Number(f[1]), timestamp: f[2], key: unb64(f[3]), value: unb64(f[4]), headers, pairs }
    if (!groups.length || groups[groups.length - 1].codec !== f[0]) groups.push({ codec: f[0], recs: [] })
    groups[groups.length - 1].recs.push(rec)
  }
  return groups
}

async function produce (kafka) {
  for (const { codec, recs } of readGroups(args.input)) {
    const producer = kafka.producer()
    await producer.connect()
    // one send per codec: kafkajs makes one batch per partition of it
    const acks = await producer.send({
      topic: TOPIC,
      compression: CODECS[codec],
      messages: recs.map(r => ({ partition: r.partition, key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp }))
    })
    await producer.disconnect()
    // kafkajs acks a base offset per partition; records of one partition follow it in send order
    const next = {}
    for (const a of acks) next[a.partition] = BigInt(a.baseOffset)
    for (const r of recs) {
      const off = next[r.partition]++
      emit(recordJson(r.partition, off, r.timestamp, r.key, r.value, r.pairs.map(([k, v]) => [k, b64(v)])))
    }
  }
}

async function consume (kafka) {
  const admin = kafka.admin()
  await admin.connect()
  const end = {}
  for (const o of await admin.fetchTopicOffsets(TOPIC)) end[o.partition] = BigInt(o.high)
  await admin.disconnect()
  const next = {}
  for (const p of Object.keys(end)) next[p] = 0n
  const behind = () => Object.keys(end).some(p => next[p] < end[p])
  if (!behind()) return
  const consumer = kafka.consumer({ groupId: `kelp-e2e-kafkajs-${TOPIC}-${process.pid}`, maxBytesPerPartition: 4 << 20 })
  await consumer.connect()
  await consumer.subscribe({ topics: [TOPIC], fromBeginning: true })
  let resolveDone
  const done = new Promise(resolve => { resolveDone = resolve })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message: m }) => {
      if (BigInt(m.offset) < end[partition]) {
        emit(recordJson(partition, m.offset, m.timestamp, m.key, m.value, headerPairs(m.headers)))
        next[partition] = BigInt(m.offset) + 1n
      }
      if (!behind()) resolveDone()
    }
  })
  const timer = setTimeout(() => resolveDone(new Error('timeout')), 60000)
  const err = await done
  clearTimeout(timer)
  await consumer.disconnect()
  if (err) throw new Error(`timeout: at ${JSON.stringify(next, (k, v) => String(v))}, want ${JSON.stringify(end, (k, v) => String(v))}`)
}

async function offsets (kafka) {
  const admin = kafka.admin()
  await admin.connect()
  const ids = await partitionIds(admin)
  const wm = {}
  for (const o of await admin.fetchTopicOffsets(TOPIC)) wm[o.partition] = o
  const times = args.times.split(',').filter(Boolean).map(Number)
  const byTime = []
  for (const t of times) {
    const m = {}
    for (const o of await admin.fetchTopicOffsetsByTimestamp(TOPIC, t)) m[o.partition] = Number(o.offset)
    byTime.push([t, m])
  }
  for (const p of ids) {
    emit({ partition: p, earliest: Number(wm[p].low), latest: Number(wm[p].high), times: byTime.map(([t, m]) => [t, m[p] >= 0 ? m[p] : null]) })
  }
  await admin.disconnect()
}

// A member of consumer group --group subscribed to the topic until stdin closes (EOF or a "close"
// line); prints the group event lines of tests/README.md. kafkajs has only eager assignors (its
// default is round-robin); each record's offset is committed once it is printed.
async function group (kafka) {
  let resolveStop
  const stop = new Promise(resolve => { resolveStop = resolve })
  let buf = ''
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', d => { buf += d; if (buf.split('\n').some(l => l.trim() === 'close')) resolveStop() })
  process.stdin.on('end', () => resolveStop())
  process.stdin.on('error', () => resolveStop())
  const consumer = kafka.consumer({ groupId: args.group, sessionTimeout: 10000, heartbeatInterval: 1000 })
  consumer.on(consumer.events.GROUP_JOIN, e => {
    const parts = (e.payload.memberAssignment[TOPIC] || []).slice().sort((a, b) => a - b)
    emit({ event: 'assigned', added: parts, partitions: parts, member_id: e.payload.memberId })
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [TOPIC], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message: m }) => {
      emit({ event: 'record', partition, offset: Number(m.offset), key: m.key === null ? null : m.key.toString('utf8'), value: m.value === null ? null : m.value.toString('utf8') })
      const next = (BigInt(m.offset) + 1n).toString()
      try {
        await consumer.commitOffsets([{ topic: TOPIC, partition, offset: next }])
        emit({ event: 'committed', offsets: [[partition, Number(next)]] })
      } catch (e) {
        console.error('commit failed', e)
        emit({ event: 'commit-failed', error: String(e) })
      }
    }
  })
  await stop
  await consumer.disconnect() // leaves the group
  emit({ event: 'closed' })
}

async function main () {
  CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
  CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec
  CompressionCodecs[CompressionTypes.ZSTD] = await zstdCodec()
  const kafka = new Kafka({ clientId: 'kelp-e2e-kafkajs', brokers: [args.bootstrap], logLevel: logLevel.WARN })
  await { create, produce, consume, offsets, group }[args.command](kafka)
}

main().catch(e => { console.error('FATAL', e); process.exit(1) })
