package conformance

import (
	"fmt"
	"testing"

	"github.com/spendcap/spendcap"
)

func init() {
	register("AParentMustExistAndNotBeTheBudgetItself", parentMustExist)
	register("TheParentIsPartOfTheDefinitionAndOfTheStatus", parentInDefinition)
	register("AChainHoldsAtMostEightBudgetsAndNoCycle", chainDepth)
	register("SetParentMovesOnlyABudgetWithoutChildren", setParentMovesLeaves)
	register("DeletingABudgetWithChildrenIsRefused", deleteWithChildren)
}

func parentMustExist(t *testing.T, b spendcap.Backend) {
	_, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "key", ParentID: "team"})
	requireCode(t, err, "SC001", "parent_id: ")
	_, err = b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "key", ParentID: "key"})
	requireCode(t, err, "SC002", "parent_id: ")
	_, err = b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "key"})
	requireCode(t, err, "SC001", "budget_id: ")
}

func parentInDefinition(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "org"})
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "team", ParentID: "org"})
	if c, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "team", ParentID: "org"}); err != nil || c.Created {
		t.Errorf("identical create: %+v, %v; want created = false", c, err)
	}
	_, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "team"})
	requireCode(t, err, "SC005", "budget_id: ")
	if st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "team"}); err != nil || st.ParentID != "org" {
		t.Errorf("status of team: parent %q, %v; want org", st.ParentID, err)
	}
	if st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "org"}); err != nil || st.ParentID != "" {
		t.Errorf("status of org: parent %q, %v; want none", st.ParentID, err)
	}
}

func chainDepth(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "l1"})
	for i := 2; i <= 8; i++ {
		mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: fmt.Sprintf("l%d", i), ParentID: fmt.Sprintf("l%d", i-1)})
	}
	_, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "l9", ParentID: "l8"})
	requireCode(t, err, "SC002", "parent_id: ")
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "leaf"})
	_, err = b.SetParent(ctx, spendcap.SetParentParams{BudgetID: "leaf", ParentID: "l8"})
	requireCode(t, err, "SC002", "parent_id: ")
	if _, err := b.SetParent(ctx, spendcap.SetParentParams{BudgetID: "leaf", ParentID: "l7"}); err != nil {
		t.Errorf("leaf under l7 (8 deep): %v", err)
	}
	// l1 is an ancestor of l3: naming l3 as l1's parent would close a cycle.
	_, err = b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "l1", ParentID: "l3"})
	requireCode(t, err, "SC002", "parent_id: ")
}

func setParentMovesLeaves(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "org"})
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "team-a", ParentID: "org"})
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "team-b", ParentID: "org"})
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "key", ParentID: "team-a"})
	if st, err := b.SetParent(ctx, spendcap.SetParentParams{BudgetID: "key", ParentID: "team-b"}); err != nil || st.ParentID != "team-b" {
		t.Fatalf("set_parent(key, team-b): %q, %v", st.ParentID, err)
	}
	_, err := b.SetParent(ctx, spendcap.SetParentParams{BudgetID: "org", ParentID: "key"})
	requireCode(t, err, "SC002", "budget_id: ")
	_, err = b.SetParent(ctx, spendcap.SetParentParams{BudgetID: "key", ParentID: "key"})
	requireCode(t, err, "SC002", "parent_id: ")
	_, err = b.SetParent(ctx, spendcap.SetParentParams{BudgetID: "key", ParentID: "nope"})
	requireCode(t, err, "SC001", "parent_id: ")
	if st, err := b.SetParent(ctx, spendcap.SetParentParams{BudgetID: "key"}); err != nil || st.ParentID != "" {
		t.Errorf("set_parent(key, none): %q, %v; want detached", st.ParentID, err)
	}
	// team-a lost its only child when key moved: it may be deleted now.
	if d, err := b.DeleteBudget(ctx, spendcap.DeleteBudgetParams{BudgetID: "team-a"}); err != nil || !d {
		t.Errorf("delete team-a: %v, %v", d, err)
	}
}

func deleteWithChildren(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "org"})
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "team", ParentID: "org"})
	_, err := b.DeleteBudget(ctx, spendcap.DeleteBudgetParams{BudgetID: "org"})
	requireCode(t, err, "SC002", "budget_id: ")
	for _, id := range []string{"team", "org"} {
		if d, err := b.DeleteBudget(ctx, spendcap.DeleteBudgetParams{BudgetID: id}); err != nil || !d {
			t.Errorf("delete %s: %v, %v", id, d, err)
		}
	}
}
