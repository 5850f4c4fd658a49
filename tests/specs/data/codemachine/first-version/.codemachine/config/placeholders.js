export default { 'PROMPTS_ROOT': 'prompts', 'specification': '.codemachine/inputs/specifications.md' };
