"""Benchmarks and speed budgets (`maskcls bench ...`): each figure measured in the same run as its baseline and
limit; the throwaway servers the team budgets measure against."""
