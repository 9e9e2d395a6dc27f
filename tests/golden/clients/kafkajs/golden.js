// Golden-bytes client for Kelp: kafkajs 2.x (pure JS).
//   node golden.js BOOTSTRAP
// Codecs: gzip built in; snappy via kafkajs-snappy; lz4 via kafkajs-lz4; zstd via a small
// adapter over zstd-codec (emscripten), because @kafkajs/zstd needs a native build that
// fails on Node 20.
'use strict'
const { Kafka, CompressionTypes, CompressionCodecs, ConfigResourceTypes, logLevel } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const LZ4Codec = require('kafkajs-lz4')
const { ZstdCodec } = require('zstd-codec')

const BOOT = process.argv[2]
const TOPIC = 'golden-kafkajs'
const TX_TOPIC = TOPIC + '-tx'
const GROUP = TOPIC + '-group'
const log = (...a) => console.log('[golden]', ...a)

function zstdCodec () {
  return new Promise(resolve => ZstdCodec.run(z => {
    const s = new z.Simple()
    resolve(() => ({
      async compress (encoder) { return Buffer.from(s.compress(encoder.buffer)) },
      async decompress (buffer) { return Buffer.from(s.decompress(buffer)) }
    }))
  }))
}

async function main () {
  CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
  CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec
  CompressionCodecs[CompressionTypes.ZSTD] = await zstdCodec()

  const kafka = new Kafka({ clientId: 'golden-kafkajs', brokers: [BOOT], logLevel: logLevel.WARN })
  const admin = kafka.admin()
  await admin.connect()

  // --- create topics + metadata ---
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic: TOPIC, numPartitions: 3, replicationFactor: 1 },
      { topic: TX_TOPIC, numPartitions: 3, replicationFactor: 1 }]
  })
  log('created', TOPIC, TX_TOPIC)
  log('topics', (await admin.listTopics()).filter(t => t.startsWith('golden')))
  log('metadata partitions', (await admin.fetchTopicMetadata({ topics: [TOPIC] })).topics[0].partitions.length)
  log('cluster', JSON.stringify(await admin.describeCluster()))
  const cfgs = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: TOPIC }] })
  log('configs', cfgs.resources[0].configEntries.length)

  // --- produce: one send per codec (kafkajs defaults: acks=-1, not idempotent) ---
  const t0 = Date.now()
  let total = 0
  const codecs = [['none', CompressionTypes.None], ['gzip', CompressionTypes.GZIP],
    ['snappy', CompressionTypes.Snappy], ['lz4', CompressionTypes.LZ4], ['zstd', CompressionTypes.ZSTD]]
  for (const [name, ct] of codecs) {
    const idem = name === 'zstd' // one idempotent producer
    const producer = kafka.producer(idem ? { idempotent: true, maxInFlightRequests: 1 } : {})
    await producer.connect()
    const messages = []
    for (let part = 0; part < 3; part++) {
      for (let i = 0; i < 10; i++) {
        const headers = { codec: name, idx: String(i) }
        if (i === 0) headers['empty-header'] = Buffer.alloc(0)
        messages.push({
          partition: part,
          key: i === 1 ? null : `key-${part}-${i}`,
          value: i === 2 ? null : `value-${name}-${part}-${i}-hello kelp hello kelp`,
          headers,
          timestamp: String(t0 + total)
        })
        total++
      }
    }
    await producer.send({ topic: TOPIC, compression: ct, messages })
    await producer.disconnect()
    log('produced codec', name)
  }
  const kp = kafka.producer()
  await kp.connect()
  for (let i = 0; i < 6; i++) {
    await kp.send({ topic: TOPIC, messages: [{ key: `k${i}`, value: `v${i}` }] })
    total++
  }
  await kp.disconnect()
  log('produced total', total)

  // --- transactions ---
  const tp = kafka.producer({ transactionalId: 'golden-kafkajs-txn-1', idempotent: true, maxInFlightRequests: 1 })
  await tp.connect()
  let txn = await tp.transaction()
  for (let i = 0; i < 3; i++) await txn.send({ topic: TX_TOPIC, messages: [{ partition: i, key: `tk${i}`, value: `committed-${i}` }] })
  await txn.commit()
  txn = await tp.transaction()
  await txn.send({ topic: TX_TOPIC, messages: [{ partition: 0, key: 'tk-abort', value: 'aborted' }] })
  await txn.abort()
  await tp.disconnect()
  log('transactions done')

  // --- list offsets ---
  log('offsets', JSON.stringify(await admin.fetchTopicOffsets(TOPIC)))
  log('bytime', JSON.stringify(await admin.fetchTopicOffsetsByTimestamp(TOPIC, t0 + 20)))

  // --- group consumer ---
  const want = total + 3
  let got = 0
  const consumer = kafka.consumer({ groupId: GROUP, readUncommitted: false })
  await consumer.connect()
  await consumer.subscribe({ topics: [TOPIC, TX_TOPIC], fromBeginning: true })
  let resolveDone
  const done = new Promise(resolve => { resolveDone = resolve })
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      got += batch.messages.length
      if (batch.messages.length) {
        await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString() }])
      }
      if (got >= want) resolveDone()
    }
  })
  await Promise.race([done, new Promise(resolve => setTimeout(resolve, 60000))])
  log('group consumed', got, 'of', want)
  log('groups', JSON.stringify(await admin.listGroups()))
  const dg = await admin.describeGroups([GROUP])
  log('describe group', dg.groups[0].state, dg.groups[0].members.length)
  log('group offsets', JSON.stringify(await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC, TX_TOPIC] })))
  await consumer.disconnect()
  if (got < want) throw new Error(`consumed only ${got} of ${want}`)

  // --- cleanup ---
  await admin.deleteGroups([GROUP])
  await admin.deleteTopics({ topics: [TOPIC, TX_TOPIC] })
  await admin.disconnect()
  log('deleted topics and group')
}

main().catch(e => { console.error('FATAL', e); process.exit(1) })
