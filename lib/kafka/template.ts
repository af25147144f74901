import { isKafkaTopic, kafkaTopics } from '../streams/patterns.js'
import { parseRules, type BridgeRule, type BridgeRulesInput } from '../streams/template.js'

export { compileRoomTemplate, TemplateError, type BridgeRule, type BridgeRulesInput, type RoomTemplate } from '../streams/template.js'

/** Kafka's own rule for topic names. */
export const TOPIC_PATTERN = /^[A-Za-z0-9._-]{1,249}$/

export const isTopicName = isKafkaTopic

/** Normalises and checks Kafka bridge rules (`topic=roomTemplate`); throws a TypeError naming the bad rule. */
export function parseBridgeRules (input: BridgeRulesInput): BridgeRule[] {
  return parseRules(input, kafkaTopics())
}
