"""Acting on experiment results: rollout plans and gates, their progression, bandit
weights; pure logic apart from the controller's I/O."""
