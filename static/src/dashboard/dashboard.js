/** @odoo-module **/
/**
 * The SaaS dashboard (client action "saas_manager.dashboard"): the tiles of
 * saas.dashboard.get_tiles(), each opening the list behind its number, and the
 * MRR and subscriptions-over-time graphs of the report models, embedded as
 * views.
 */
import { Component, onWillStart, useState } from "@odoo/owl";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { user } from "@web/core/user";
import { View } from "@web/views/view";

export class SaasDashboard extends Component {
    static template = "saas_manager.Dashboard";
    static components = { View };
    static props = ["*"];

    setup() {
        this.orm = useService("orm");
        this.action = useService("action");
        this.state = useState({ tiles: [] });
        onWillStart(async () => {
            // Both asked at once: the ORM refuses calls from a component destroyed while
            // it waited (the user clicked elsewhere).
            [this.state.tiles, this.isManager] = await Promise.all([
                this.orm.call("saas.dashboard", "get_tiles", []),
                user.hasGroup("saas_manager.group_saas_manager"),
            ]);
        });
    }

    open(tile) {
        this.action.doAction(tile.action);
    }

    graph(resModel) {
        return {
            resModel,
            type: "graph",
            display: { controlPanel: false },
            context: { lang: user.context.lang },
        };
    }
}

registry.category("actions").add("saas_manager.dashboard", SaasDashboard);
