module.exports = [{ 'id': 'qa', 'name': 'QA', 'description': 'Checks the change by hand', 'promptPath': 'prompts/qa.md', 'engineId': None }];
