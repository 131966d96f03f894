package decide

import "slices"

// judge works out what the profile of c's member says, were the contact
// that member: still there, left (with the ended and new positions), or
// too little to say. The outcome goes into c.value, c.reason and c.ev.
func (c *candidate) judge(in Input, e employer) {
	m := c.m
	c.ev = Evidence{
		MemberID: m.ID, ProfileSource: m.Source, ProfileObservedAt: m.ObservedAt,
		CompanyName: in.Account.Name,
	}
	c.value, c.reason = NoFeedback, ""
	if in.MaxProfileAge > 0 && !in.Now.IsZero() && in.Now.Sub(m.ObservedAt) > in.MaxProfileAge {
		c.reason = ReasonStale
		return
	}
	atCompany, elsewhere := c.split(e)
	if len(atCompany) == 0 {
		c.reason = ReasonNoPosition
		return
	}
	if slices.ContainsFunc(atCompany, Position.IsCurrent) {
		c.reason = ReasonStillThere
		return
	}
	ended := latest(atCompany, func(p Position) *YearMonth { return cmpOr(p.End, p.Start) })
	var current *Position
	if cur := filter(elsewhere, Position.IsCurrent); len(cur) > 0 {
		current = latest(cur, func(p Position) *YearMonth { return p.Start })
	}
	c.ev.Ended, c.ev.Current = ended, current
	if ended.End == nil && current == nil {
		c.reason = ReasonTooLittle
		return
	}
	c.ev.Contradicts = map[string]string{"parentcustomerid": in.Account.Name}
	if current != nil {
		c.ev.Contradicts["suggested_company"] = current.CompanyName
	}
	c.value, c.reason = NotAtCompany, ReasonLeft
}

// split sorts the member's positions into those at the employer and the
// others, and records the best company match in the evidence.
func (c *candidate) split(e employer) (atCompany, elsewhere []Position) {
	for _, p := range c.m.Positions {
		if how, conf, id := e.judging(p); how != "" {
			atCompany = append(atCompany, p)
			if conf > c.ev.CompanyConfidence {
				c.ev.CompanyMatch, c.ev.CompanyConfidence, c.ev.CompanyID = how, conf, id
			}
		} else {
			elsewhere = append(elsewhere, p)
		}
	}
	// A company page is one company whatever a position calls it: after a
	// rename a profile may end "Contoso" and start "Nimbus" on the same page.
	pages := map[string]bool{}
	for _, p := range atCompany {
		pages[p.CompanyID] = p.CompanyID != ""
	}
	elsewhere = slices.DeleteFunc(elsewhere, func(p Position) bool {
		if pages[p.CompanyID] {
			atCompany = append(atCompany, p)
		}
		return pages[p.CompanyID]
	})
	return atCompany, elsewhere
}
