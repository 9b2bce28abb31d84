/** @odoo-module **/
// A portal customer: the instance's usage bars, an upgrade with its pro-rata invoice paid
// with Odoo's demo provider, then the instance's new limits.
import { registry } from "@web/core/registry";

registry.category("web_tour.tours").add("saas_portal_upgrade_tour", {
    steps: () => [
        { content: "the instance's usage bars", trigger: ".o_saas_usage .progress" },
        { content: "on the Starter plan", trigger: ".o_saas_plan_name:contains(Starter)" },
        { content: "users against the plan's 5", trigger: ".o_saas_usage_figures:contains(/ 5)" },
        { content: "change the plan", trigger: "a:contains(Change plan)", run: "click" },
        { content: "choose Professional", trigger: "label:contains(Professional)", run: "click" },
        { content: "see what changes", trigger: ".o_saas_change_preview", run: "click" },
        {
            content: "billed now for the days left",
            trigger: ".o_saas_change_outcome:contains(You are billed)",
        },
        { content: "confirm", trigger: ".o_saas_change_confirm", run: "click" },
        { content: "the card details (test data)", trigger: "#pay_with #customer_input", run: "edit 4242" },
        { content: "pay", trigger: "#pay_with button[name=o_payment_submit_button]", run: "click" },
        { content: "paid", trigger: ".o_portal_wrap :contains(Paid), .o_portal_wrap :contains(In Payment)" },
        {
            content: "back to the instances",
            trigger: "body",
            run: () => {
                window.location.href = "/my/instances";
            },
        },
        { content: "open the instance", trigger: ".o_saas_portal_instance a", run: "click" },
        { content: "now on Professional", trigger: ".o_saas_plan_name:contains(Professional)" },
        { content: "with its 15 users", trigger: ".o_saas_usage_figures:contains(/ 15)" },
    ],
});
