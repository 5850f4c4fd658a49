export default [
  { "id": "iteration-checker", "behavior": { "type": "loop", "action": "stepBack", "stepBack": 1, "maxIterations": 3, "skip": [] } },
  { "id": "handoff", "behavior": { "type": "trigger", "action": "mainAgentCall", "triggerAgentId": "qa" } }
];
