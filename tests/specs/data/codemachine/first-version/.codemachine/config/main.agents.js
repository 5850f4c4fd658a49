export default [
  { "id": "plan", "name": "Planner", "description": "Plans the change", "promptPath": "prompts/plan.md", "model": "gpt-5.1-high" },
  { "id": "build", "name": "Builder", "promptPath": "prompts/build.md", "moduleId": "iteration-checker" },
  { "id": "review", "name": "Reviewer", "promptPath": "prompts/review.md", "moduleId": ["handoff"] }
];
